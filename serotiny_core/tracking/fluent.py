"""MLflow's fluent API inside a job: ``mlflow.log_metric(...)`` writes to the job's own run.

serotiny talks to MLflow from a process of its own, and the command never
imports MLflow (that import costs seconds). A model or callback that calls
``mlflow.log_metric``, ``mlflow.log_artifact`` or ``mlflow.active_run()``
still expects the run it is part of. So once the job's run is open, the
job's run becomes MLflow's active run in this process: at once when MLflow
is already imported, else the moment user code imports it (a one-time
import hook), so nothing is paid by jobs that never use it. The tracking
URI and experiment are set in the environment for code that builds its own
``MlflowClient()``. A tracking URI that earlier code in the process pinned
with ``mlflow.set_tracking_uri`` (a notebook's cell, Lightning's
``MLFlowLogger``) wins over the environment in MLflow, so for the job it is
pointed at the job's store, and put back when the job ends.

When the job ends, the run is taken off MLflow's stack with the job's own
status, after MLflow's asynchronous logging is flushed; MLflow's exit
handler, which would mark any run still active FINISHED, then finds none,
so a FAILED or KILLED run stays so.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
from typing import Any, Callable

from serotiny_core.errors import one_line

log = logging.getLogger("serotiny")
_run_id: str | None = None
_tracking_uri: str | None = None
# The tracking URI the process had pinned with mlflow.set_tracking_uri, while the job's is.
_pinned: str | None = None
# The job's run as (experiment id, run id), asked for only when the job's code uses MLflow:
# waiting for the run to be open would otherwise stall the start of every job.
_opened: Callable[[], tuple[str, str]] | None = None


class _ResumeOnImport(importlib.abc.MetaPathFinder):
    """Resumes the job's run right after the first ``import mlflow`` of the job's code."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "mlflow":
            return None
        _remove_hook()
        spec = importlib.util.find_spec("mlflow")
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            _resume(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_HOOK = _ResumeOnImport()


def _remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


def _resume(mlflow: Any) -> None:
    """Make the job's run MLflow's active run; never break the code that imported MLflow."""
    global _run_id
    if _opened is None:
        return
    try:
        experiment_id, _run_id = _opened()
        os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
        _pin(mlflow)
        active = mlflow.active_run()
        if active is None or active.info.run_id != _run_id:
            mlflow.start_run(run_id=_run_id)
    except Exception as error:  # noqa: BLE001 - a logging convenience must not stop the job
        log.warning("mlflow's fluent API is not bound to the job's run: %s", one_line(error)[:200])


def _pin(mlflow: Any) -> None:
    """Point MLflow at the job's tracking URI where the process pinned another with
    ``mlflow.set_tracking_uri`` (else MLflow reads the job's from the environment already);
    the pinned one is kept for :func:`detach`."""
    global _pinned
    current = mlflow.get_tracking_uri()
    if current != _tracking_uri:
        _pinned = current
        mlflow.set_tracking_uri(_tracking_uri)


def attach(tracking_uri: str, opened: Callable[[], tuple[str, str]]) -> None:
    """From now on, ``mlflow.*`` in this process logs to the run ``opened()`` names."""
    global _opened, _tracking_uri
    _opened, _tracking_uri = opened, tracking_uri
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    if "mlflow" in sys.modules:
        _resume(sys.modules["mlflow"])
    elif _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def detach(status: str) -> None:
    """End the fluent API's hold on the run with the job's ``status``, its logging flushed; the
    process's own pinned tracking URI back."""
    global _run_id, _opened, _pinned
    run_id, _run_id, _opened = _run_id, None, None
    pinned, _pinned = _pinned, None
    _remove_hook()
    mlflow = sys.modules.get("mlflow")
    if run_id is None or mlflow is None:
        return
    try:
        mlflow.flush_async_logging()
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status)
    except Exception as error:  # noqa: BLE001 - the MLflow process still ends the run
        log.warning("mlflow's fluent API did not end the job's run cleanly: %s", one_line(error)[:200])
    finally:
        if pinned is not None:
            mlflow.set_tracking_uri(pinned)
