"""The Hydra callback serotiny adds to train/test/predict (``hydra.callbacks.serotiny``).

Before a multirun's first train job it creates the MLflow store's tables and
the experiment: jobs that start together (joblib, submitit) would otherwise
race to create them, and all but one fail. After the last job it prints the
summary table from the ``result.json`` each job wrote (see
:mod:`serotiny_core.summary`). A train sweep is one MLflow parent run, made
here, whose children are the jobs' runs (:mod:`serotiny_core.sweep`). Where
the jobs run in this process (Hydra's basic launcher), it starts their MLflow
process first: one serves them all. Under the SLURM launcher it lets the
sweep notice jobs that end without a result where the cluster keeps no
accounting (see :mod:`serotiny_core.slurm_states`). It runs in the process
that started the sweep, whichever launcher ran the jobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from serotiny_core import resolvers, sweep
from serotiny_core.redact import redact_yaml_file
from serotiny_core.summary import print_multirun_summary, read_results, result_files

OVERRIDE = f"++hydra.callbacks.serotiny._target_={__name__}.MultirunCallback"
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
STORE_KEYS = ["tracking_uri", "experiment_name", "artifact_location"]


def _store_settings(config: DictConfig) -> dict[str, Any] | None:
    """Where train jobs will track: the ``mlflow`` group's store keys, or the embedded default."""
    if "mlflow" not in config:
        from serotiny_core.tracking import embedded_store

        return embedded_store(Path(resolvers.project_root()))
    node = config.mlflow
    if not isinstance(node, DictConfig):
        return None
    return {key: node[key] for key in STORE_KEYS if key in node}


def prepare_store(config: DictConfig) -> None:
    """Create the tracking store and the experiment train jobs will log to, once, and the
    sweep's parent run (see :mod:`serotiny_core.sweep`).

    test and predict jobs only read runs that exist, so they race for nothing.
    """
    from serotiny_core.tracking import TrackingSettings, check_reachable, store_lock
    from serotiny_core.tracking.worker import Tracker  # the MLflow process's, used here at once

    values = _store_settings(config) if config.hydra.job.config_name == "train" else None
    if values is None:
        return
    settings = TrackingSettings.from_config(OmegaConf.create(values),
                                            default_experiment=resolvers.project_name())
    if settings is not None:
        check_reachable(settings.tracking_uri, settings.credentials)
        with store_lock(settings.tracking_uri):  # another command may be creating it too
            tracker = Tracker(settings)
            sweep.open_parent(tracker.client, tracker.experiment_id(), config,
                              settings.experiment_name)


class MultirunCallback(Callback):
    """Prepares the tracking store and the parent run before a sweep; prints and records the
    summary after it."""

    def __init__(self) -> None:
        self.before: dict[Path, int] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.before = result_files(Path(config.hydra.sweep.dir))
        launcher = config.hydra.launcher.get("_target_")
        if launcher == BASIC_LAUNCHER and _store_settings(config) is not None:
            from serotiny_core import tracking

            tracking.start_early()  # the jobs run here, one after another: they share it
        prepare_store(config)
        if launcher == SLURM_LAUNCHER:
            from serotiny_core.slurm_states import watch_sweep

            watch_sweep()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        redact_yaml_file(sweep_dir / "multirun.yaml")
        results = read_results(sweep_dir, self.before)
        if results:
            print_multirun_summary(results, sweep_dir)
        sweep.close_parent(config, results)
