"""The Lightning logger, in the command's own (training) process, bound to a run its MLflow process manages."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from serotiny_core.tracking.client import TrackingProcess

NOT_IN_METRIC_NAMES = re.compile(r"[^a-zA-Z0-9_/. -]+")  # what MLflow refuses in a metric name


class RemoteClient:
    """``logger.experiment``: MlflowClient's methods, run in the MLflow process."""

    def __init__(self, tracking: "TrackingProcess") -> None:
        self._tracking = tracking

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._tracking.client_call(name, *args, **kwargs)


class RunLogger:
    """Lightning's MLflow logger for a run we manage; it never imports MLflow here.

    Given the MLFlowLogger of the trainer's Lightning namespace as its base
    when the trainer is built (:func:`serotiny_core.lightning_ns.adopt`), so
    that callbacks which look for one (to upload artifacts through
    ``logger.experiment``) keep working; but MLFlowLogger's own constructor
    opens an MLflow client, which is what the MLflow process is for, so it
    is never called (Lightning's base Logger has no state of its own to set up).
    Metrics are sent without waiting; hyperparameters are logged from the
    composed config and the run's status is set when the command ends.
    """

    def __init__(self, tracking: "TrackingProcess") -> None:
        self._tracking = tracking
        self._tracking_uri = tracking.settings.tracking_uri
        self._experiment_name = tracking.settings.experiment_name
        self._run_id = tracking.state().run_id
        self._experiment_id = tracking.state().experiment_id
        self._prefix = ""
        self._client = RemoteClient(tracking)

    @property
    def experiment(self) -> Any:
        return self._client

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def experiment_id(self) -> str | None:
        return self._experiment_id

    def log_hyperparams(self, params: Any) -> None:
        """The composed config is logged instead (see ``Tracker.log_config``)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        values = {NOT_IN_METRIC_NAMES.sub("", key): float(value) for key, value in metrics.items()
                  if not isinstance(value, str)}
        self._tracking.log_metrics(values, step or 0)

    def finalize(self, status: str = "success") -> None:
        """The command ends the run."""

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Checkpoints are uploaded when the command ends."""
