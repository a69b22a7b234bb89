"""MLflow tracking, in three processes' parts: each module says where it runs.

- :mod:`~serotiny_core.tracking.settings`: the ``mlflow`` config group,
  checked in the command before MLflow is imported anywhere;
- :mod:`~serotiny_core.tracking.client`: the command's side of its MLflow
  process, :class:`TrackingProcess`;
- :mod:`~serotiny_core.tracking.worker`: that process, where a
  :class:`~serotiny_core.tracking.worker.Tracker` talks to MLflow (not
  imported here: ``python -m`` runs it as a script);
- :mod:`~serotiny_core.tracking.remote`: :class:`RunTracking`, what both
  sides do, and how a request travels between them;
- :mod:`~serotiny_core.tracking.logger`: the Lightning logger, in the
  training process;
- :mod:`~serotiny_core.tracking.fluent`: ``mlflow.*`` in the job's own code,
  bound to the job's run.
"""

from __future__ import annotations

from serotiny_core.tracking.client import TrackingProcess, pin, run_tags, start_early
from serotiny_core.tracking.remote import RunState, RunTracking
from serotiny_core.tracking.settings import (MODE_TAG, PARENT_TAG, SWEEP_JOB_TAG, TrackingSettings,
                                             check_reachable, embedded_store, store_lock)

__all__ = [
    "MODE_TAG",
    "PARENT_TAG",
    "RunState",
    "RunTracking",
    "SWEEP_JOB_TAG",
    "TrackingProcess",
    "TrackingSettings",
    "check_reachable",
    "embedded_store",
    "pin",
    "run_tags",
    "start_early",
    "store_lock",
]
