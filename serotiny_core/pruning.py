"""Optuna pruning inside a train job: report ``optimized_metric`` per epoch, stop when told.

The Optuna sweeper (:mod:`serotiny_core.optuna_sweeper`) tells each trial's
job which trial it is through the environment (``hydra.job.env_set``, so
the job's config and its MLflow child run's identity are untouched); the
job may run in another process or on another machine (joblib, submitit,
SLURM), so it finds the trial again in the study's storage. Optuna is
imported only when a job is such a trial.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

TRIAL_ENV = "SEROTINY_OPTUNA_TRIAL"
STUDY_ENV = "SEROTINY_OPTUNA_STUDY"
STORAGE_ENV = "SEROTINY_OPTUNA_STORAGE"
PRUNER_ENV = "SEROTINY_OPTUNA_PRUNER"
PRUNED_TAG = "serotiny.pruned"

# The storages of studies kept in memory (storage: null), by study name: the basic
# launcher runs trials in the sweeper's own process, where the callback finds them here.
MEMORY_STORAGES: dict[str, Any] = {}


@dataclass(frozen=True)
class Pruned:
    """What a pruned trial's job returns: the sweeper tells Optuna PRUNED instead of a value."""

    objective: float | None


def _trial() -> Any:
    """The running trial, from the study the environment names."""
    import optuna
    from hydra.utils import instantiate

    name, url = os.environ[STUDY_ENV], os.environ.get(STORAGE_ENV, "")
    storage = optuna.storages.get_storage(url) if url else MEMORY_STORAGES[name]
    pruner = instantiate(json.loads(os.environ[PRUNER_ENV]))
    study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
    number = int(os.environ[TRIAL_ENV])
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(name), number)
    return optuna.trial.Trial(study, trial_id)


class PruningCallback:
    """Reports the metric after each validation epoch and stops the fit when the pruner says so.

    Rank 0 alone talks to the study; under DDP its decision is shared so every
    rank stops at the same epoch. A Lightning Callback once the trainer is
    built (see :func:`serotiny_core.lightning_ns.adopt`).
    """

    def __init__(self, metric: str, rank: int) -> None:
        self.metric = metric
        self.trial = _trial() if rank == 0 else None
        self.pruned = False

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        value = trainer.callback_metrics.get(self.metric)
        if self.trial is not None and value is not None:
            self.trial.report(float(value), step=trainer.current_epoch)
            prune = self.trial.should_prune()
        if trainer.strategy.reduce_boolean_decision(prune, all=False):
            self.pruned = trainer.should_stop = True


def callbacks(metric: str, rank: int) -> list[Any]:
    """The pruning callback when this job is a pruned study's trial, else none."""
    if os.environ.get(TRIAL_ENV) is None or os.environ.get(PRUNER_ENV) in (None, "", "null"):
        return []
    return [PruningCallback(metric, rank)]


def was_pruned(trainer: Any) -> bool:
    return any(isinstance(cb, PruningCallback) and cb.pruned for cb in trainer.callbacks)
