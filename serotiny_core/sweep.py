"""A train sweep as one MLflow parent run, with one child run per job, that a re-run resumes.

The parent is made (or found again) by the multirun callback in the process
that launched the sweep, before any job starts; jobs learn its id from the
environment (``SEROTINY_SWEEP_PARENT``), which every launcher hands on to
the processes it starts (joblib's workers, submitit's jobs, sbatch). The
same command run again is the same sweep: its key leaves out ``hydra.*``
settings (launcher, sweeper budget) and ``fresh_sweep``, so a re-run after
a crash, on another launcher or with more Optuna trials finds the parent
again. A job finds its child by the parent and its own overrides: a
finished child is only read (the job returns its recorded objective), any
other is reopened and resumed from its last checkpoint.

The parent always ends: FINISHED when every child finished, FAILED when
one did not, KILLED on Ctrl-C (:func:`ended_on_exit`, around the launch).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from serotiny_core import __version__, interrupts
from serotiny_core.errors import Interrupted
from serotiny_core.job import override_key
from serotiny_core.redact import recordable, redact_plain, redact_text
from serotiny_core.summary import write_summary_files
from serotiny_core.tracking import MODE_TAG, PARENT_TAG, SWEEP_JOB_TAG

log = logging.getLogger("serotiny")

PARENT_ENV = "SEROTINY_SWEEP_PARENT"
JOB_ENV = "SEROTINY_SWEEP_JOB"  # a job's identity, set by a sweeper whose jobs may repeat overrides
SWEEP_KEY_TAG = "serotiny.sweep_key"
JOB_NUM_TAG = "serotiny.job_num"
OVERRIDES_TAG = "serotiny.sweep_overrides"
SWEEP_DIR_TAG = "serotiny.sweep_dir"
SWEEP_MODE = "sweep"  # the parent's serotiny.mode: never taken for a train run to resume or test
FRESH_KEY = "fresh_sweep"
SEARCHED_CHILDREN = 5000


def task_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides that say what a sweep (or a job) trains, sorted: no ``hydra.*`` setting,
    no ``fresh_sweep``."""
    def kept(override: str) -> bool:
        key = override_key(override)
        return key != FRESH_KEY and key != "hydra" and not key.startswith(("hydra.", "hydra/"))

    return sorted(redact_text(o) for o in overrides if kept(o))


def job_key(overrides: Sequence[str]) -> str:
    """A job's identity inside its sweep (tag ``serotiny.sweep_job``)."""
    return " ".join(task_overrides(overrides))


def sweep_key(mode: str, experiment: str, overrides: Sequence[str]) -> str:
    """A sweep's identity (tag ``serotiny.sweep_key``): its command, experiment and overrides."""
    text = json.dumps([mode, experiment, task_overrides(overrides)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def parent_id() -> str | None:
    """The parent run of the sweep this job belongs to (set by the process that launched it)."""
    return os.environ.get(PARENT_ENV) or None


def child_tags(parent: str, overrides: Sequence[str]) -> dict[str, str]:
    """The tags a job's run is found again by on a re-run: its parent and its own overrides.

    A sweeper may name its jobs itself (``SEROTINY_SWEEP_JOB``): Optuna can sample the same
    values twice, and two trials are two jobs even then.
    """
    return {PARENT_TAG: parent, SWEEP_JOB_TAG: os.environ.get(JOB_ENV) or job_key(overrides)}


# -- the parent, in the process that launched the sweep ----------------------------------------

@dataclass
class Parent:
    """The open parent run, and what its children were when this command started."""

    client: Any
    run_id: str
    previous_status: str  # "" when this command created it
    children_before: dict[str, tuple[str, Any]] = field(default_factory=dict)


_parent: Parent | None = None


def _children(client: Any, run_id: str) -> list[Any]:
    """Every child of the parent, in any experiment (a swept experiment name spreads them)."""
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, f"tags.`{PARENT_TAG}` = '{run_id}'",
                              max_results=SEARCHED_CHILDREN) if ids else []


def _snapshot(children: Sequence[Any]) -> dict[str, tuple[str, Any]]:
    return {r.info.run_id: (r.info.status, r.info.end_time) for r in children}


def _find_parent(client: Any, experiment_id: str, key: str) -> Any | None:
    found = client.search_runs([experiment_id], f"tags.`{SWEEP_KEY_TAG}` = '{key}'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def command_overrides(config: DictConfig) -> list[str]:
    """The command line's overrides as typed: ``${oc.env:...}`` stays unresolved (no secret)."""
    return [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False)]


def _run_name(config: DictConfig) -> str:
    """The parent's name: the configured run name (its jobs add ``-<job>``), else ``sweep``."""
    try:
        name = config.mlflow.run_name
    except Exception:  # e.g. an interpolation of a swept or a hydra value not known here
        name = None
    return str(name) if name else "sweep"


def _config_text(config: DictConfig) -> str:
    """The sweep's config (its own keys, not Hydra's), redacted as a job's config is."""
    own = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    try:
        recorded = recordable(own)
    except Exception:  # a value only a job can resolve (${hydra:runtime...}): kept unresolved
        recorded = redact_plain(OmegaConf.to_container(own, resolve=False))
    return OmegaConf.to_yaml(OmegaConf.create(recorded))


def _create(client: Any, experiment_id: str, config: DictConfig, key: str) -> str:
    overrides = task_overrides(command_overrides(config))
    tags = {SWEEP_KEY_TAG: key, MODE_TAG: SWEEP_MODE, OVERRIDES_TAG: " ".join(overrides),
            SWEEP_DIR_TAG: str(config.hydra.sweep.dir), "serotiny.version": __version__}
    run_id = client.create_run(experiment_id, tags=tags, run_name=_run_name(config)).info.run_id
    client.log_text(run_id, _config_text(config), f"config/{config.hydra.job.config_name}.yaml")
    return run_id


def open_parent(client: Any, experiment_id: str, config: DictConfig, experiment: str) -> str:
    """Find the sweep's parent again (unless ``fresh_sweep``) or create it; jobs inherit its id.

    A parent found FINISHED is left as it is until something of the sweep
    changes (see :func:`close_parent`): a re-run of a complete sweep writes nothing.
    """
    global _parent
    mode = str(config.hydra.job.config_name)
    key = sweep_key(mode, experiment, command_overrides(config))
    found = None if config.get(FRESH_KEY) else _find_parent(client, experiment_id, key)
    if found is None:
        _parent = Parent(client, _create(client, experiment_id, config, key), "")
    else:
        _parent = Parent(client, found.info.run_id, found.info.status,
                         _snapshot(_children(client, found.info.run_id)))
        if found.info.status != "FINISHED":
            client.update_run(found.info.run_id, status="RUNNING")
        log.info("continuing sweep %r (MLflow run %s): finished jobs are skipped, interrupted "
                 "ones resumed (fresh_sweep=true starts afresh)", found.info.run_name,
                 found.info.run_id)
    os.environ[PARENT_ENV] = _parent.run_id
    return _parent.run_id


def _best(results: Sequence[Mapping[str, Any]], maximize: bool) -> float | None:
    values = [r["objective"] for r in results
              if isinstance(r.get("objective"), (int, float)) and math.isfinite(r["objective"])]
    if not values:
        return None
    return max(values) if maximize else min(values)


def maximizes(config: DictConfig) -> bool:
    """Whether the sweeper's ``direction`` says maximize (Optuna's spelling or its enum's)."""
    sweeper = config.hydra.get("sweeper")
    direction = sweeper.get("direction") if isinstance(sweeper, DictConfig) else None
    return str(direction).lower().endswith("maximize")


def _log_outcome(parent: Parent, config: DictConfig, results: Sequence[Mapping[str, Any]],
                 summary_files: Sequence[Path]) -> None:
    for path in summary_files:
        parent.client.log_artifact(parent.run_id, str(path))
    metric = next((r["metric"] for r in results if r.get("metric")), None)
    best = _best(results, maximizes(config))
    if metric and best is not None:
        parent.client.log_metric(parent.run_id, f"best_{metric}", best)


def _status(children: Sequence[Any]) -> str:
    return "FINISHED" if all(r.info.status == "FINISHED" for r in children) else "FAILED"


def _taken() -> tuple[Parent, list[Any]] | None:
    """The open parent, now closed for this process, and its children; None when there is
    none, or when the sweep was complete already and no child changed (nothing to write)."""
    global _parent
    parent, _parent = _parent, None
    os.environ.pop(PARENT_ENV, None)
    if parent is None:
        return None
    children = _children(parent.client, parent.run_id)
    if parent.previous_status == "FINISHED" and _snapshot(children) == parent.children_before:
        return None
    return parent, children


def close_parent(config: DictConfig, results: Sequence[Mapping[str, Any]]) -> None:
    """After the last job: the summary as artifacts, the best objective, and the status the
    children add up to."""
    taken = _taken()
    if taken is None:
        return
    parent, children = taken
    with tempfile.TemporaryDirectory(prefix="serotiny-sweep-") as folder:
        _log_outcome(parent, config, results, write_summary_files(results, Path(folder)))
    parent.client.set_terminated(parent.run_id, _status(children))


def _abandon(status: str) -> None:
    """End a parent the sweep left open (a job raised, or Ctrl-C); the error that stopped the
    sweep is what the command reports, so a store that fails here only warns."""
    try:
        taken = _taken()
        if taken is not None:
            taken[0].client.set_terminated(taken[0].run_id, status)
    except Exception as error:  # noqa: BLE001
        log.warning("the sweep's parent run was not marked %s: %s", status, str(error)[:200])


@contextlib.contextmanager
def ended_on_exit() -> Iterator[None]:
    """Around a launch: a parent still open when the sweep stops early is never left RUNNING.

    Hydra skips the callback's end when a job raises; the parent is then
    FAILED, or KILLED when the sweep was interrupted.
    """
    try:
        yield
    except BaseException as error:
        stopped = isinstance(error, (KeyboardInterrupt, Interrupted)) or interrupts.requested()
        _abandon("KILLED" if stopped else "FAILED")
        raise
    finally:
        _abandon("FAILED")  # only reached with a parent open when the callback's end never ran
