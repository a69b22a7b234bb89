"""The Lightning logger bound to a run that :class:`serotiny_core.tracking.Tracker` manages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from pytorch_lightning.loggers import MLFlowLogger

if TYPE_CHECKING:
    from serotiny_core.tracking import Tracker


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger bound to a run we manage; logging never raises.

    Subclassing MLFlowLogger keeps callbacks that look for it (to upload
    artifacts) working. Hyperparameters are logged by :class:`Tracker` from
    the composed config, and the run's status is set by it, not here.
    """

    def __init__(self, tracker: "Tracker") -> None:
        super().__init__(tracking_uri=tracker.settings.tracking_uri, run_id=tracker.run_id,
                         experiment_name=tracker.settings.experiment_name)
        self._tracker = tracker

    def log_hyperparams(self, params: Any) -> None:
        """The composed config is logged instead (see Tracker.log_config)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._tracker.guard(f"metrics at step {step}", super().log_metrics, metrics, step)

    def finalize(self, status: str = "success") -> None:
        """The Tracker ends the run."""

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Checkpoints are uploaded by the Tracker when the command ends."""
