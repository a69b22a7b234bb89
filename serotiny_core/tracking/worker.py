"""The MLflow process of a command: ``python -m serotiny_core.tracking.worker REQUESTS REPLIES``.

Importing MLflow and opening its SQLAlchemy store costs seconds of CPU.
Done here, on another core, it overlaps the command's own start (Hydra,
torch, reading the manifest), and logging during training costs the loop
a pipe write. Requests come in on the socket ``REQUESTS``, replies and
log records go out on ``REPLIES`` (see :mod:`serotiny_core.tracking.remote`);
``None`` says the command is done. (Not the end of the requests' socket:
DataLoader workers forked by the command hold a copy of it, so that end
may never come.) The process then waits for the next command of the same
process (the next job of a sweep, the next command of a notebook), which
finds MLflow loaded; each command hands over its folder, environment and
output streams, and MLflow's caches of the last command's stores are
emptied.

The process ignores Ctrl-C and SIGTERM (the command handles them and still sends the
run's last requests), and when the command goes away without ending its
run (killed), the run is marked KILLED here.

:class:`Tracker` does the work: the run's lifecycle is ours, not the
Lightning logger's: a finished fit is FINISHED, an exception FAILED (with
the error as a tag), Ctrl-C or SIGTERM KILLED. Only global rank 0 talks to
MLflow. A server that goes away during training never stops the training:
what could not be logged is collected and named in one warning at the end.
This module imports neither pluggy, Hydra nor torch: the process starts
while the command composes its config, and loads only what MLflow needs.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Iterator, Mapping

from omegaconf import OmegaConf

from serotiny_core.errors import ConfigError, SerotinyError, TrackingError, one_line
from serotiny_core.tracking import remote
from serotiny_core.tracking.remote import RunState
from serotiny_core.tracking.settings import (MODE_TAG, PARENT_TAG, SWEEP_JOB_TAG, TrackingSettings,
                                             artifact_location, is_local, is_server, store_lock)

log = logging.getLogger("serotiny")

ERROR_TAG = "serotiny.error"
GIT_COMMIT = "mlflow.source.git.commit"
GIT_DIRTY = "mlflow.source.git.dirty"
SEARCHED_RUNS = 100  # newest runs looked at when a name or "the latest train run" is looked for
MAX_PARAM_LENGTH = 6000  # MLflow 3's limit on a param value
MAX_KEY_LENGTH = 250
# MLflow retries an unreachable server for minutes by default; a few short
# tries keep a dead server from stalling a training loop.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"model": {"latent_dim": 4}}`` -> ``{"model/latent_dim": "4"}``, cut under MLflow's limits."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
            continue
        text = str(value)
        if len(text) > MAX_PARAM_LENGTH:
            text = text[: MAX_PARAM_LENGTH - 3] + "..."
        flat[name[:MAX_KEY_LENGTH]] = text
    return flat


@contextlib.contextmanager
def linked_as(path: Path, name: str) -> Iterator[Path]:
    """``path`` named ``name``, in a temporary folder beside it: a hard link where it can, else a copy."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(dir=path.parent) as staging:
        target = Path(staging) / name
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        yield target


def is_top_level(run: Any) -> bool:
    """Not run under another train run: no parent, or a sweep's parent (its jobs are train runs)."""
    tags = run.data.tags
    return PARENT_TAG not in tags or SWEEP_JOB_TAG in tags


def is_train_run(run: Any) -> bool:
    """Whether ``run`` was made by ``serotiny train`` (runs from before the mode tag: by its command)."""
    tags = run.data.tags
    if MODE_TAG in tags:
        return tags[MODE_TAG] == "train"
    return tags.get("serotiny.command", "").startswith("serotiny train")


class Tracker:
    """One MLflow run: opened or reopened at start, ended exactly once (see
    :class:`~serotiny_core.tracking.remote.RunTracking`, whose methods it has).

    Its callers run :func:`~serotiny_core.tracking.settings.check_reachable`
    first, in the command's own process, where a dead server is reported
    before MLflow is even imported.
    """

    def __init__(self, settings: TrackingSettings) -> None:
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        settings.use_credentials()
        from mlflow.tracking import MlflowClient

        self.settings = settings
        self.client = MlflowClient(settings.tracking_uri)
        self.run_id: str | None = None
        self.experiment: str = ""
        self.resumed = False
        self.ended = False
        self.previous_tags: dict[str, str] = {}
        self.previous_status = ""
        self.previous_end_time: int | None = None
        self.read_only = False  # a finished run found again: nothing is written to it
        self.recorded_metrics: dict[str, float] = {}  # that run's metrics (their last values)
        self.logged_through: dict[str, int] = {}  # a resumed run's last logged step, by metric
        self.retagged: dict[str, str] = {}  # the tags opening a resumed run set
        self.source_run_id: str | None = None  # whose artifacts are read: this run, or its parent
        self.unreachable = False
        self.not_logged: list[str] = []

    def guard(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an MLflow call; on failure remember ``what`` and carry on.

        After the first failure the store is taken as gone: later calls are
        skipped (and named) instead of each waiting out MLflow's retries.
        """
        if self.run_id is None or self.read_only:  # not opened (its error says why), or only read
            return None
        if self.unreachable:
            self.not_logged.append(what)
            return None
        try:
            return call(*args, **kwargs)
        except Exception as error:  # a tracking failure must not kill training
            self.unreachable = True
            self.not_logged.append(f"{what} ({one_line(error)[:200]})")
            log.warning("MLflow stopped answering (%s); training goes on, logging to MLflow is "
                        "skipped from now on", one_line(error)[:200])
            return None

    def experiment_id(self) -> str:
        """The experiment's id, created on first use (and fetched when another job just did)."""
        name = self.settings.experiment_name
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            self._warn_local_artifacts(experiment)
            return experiment.experiment_id
        location = artifact_location(self.settings)
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _warn_local_artifacts(self, experiment: Any) -> None:
        """A server's experiment made with a client's folder as artifact location (by older
        serotiny, or another tool): its artifacts stay on that client's disk."""
        location = experiment.artifact_location or ""
        if (not is_server(self.settings.tracking_uri) or self.settings.artifact_location
                or not is_local(location)):
            return
        log.warning("MLflow experiment %r keeps its artifacts in %s, on the disk of the machine "
                    "that created it: other machines and the MLflow UI cannot fetch them (use a "
                    "new experiment_name, whose artifacts the server stores)",
                    experiment.name, location)

    def find_run(self, experiment_id: str) -> Any | None:
        """The run named by run_id, or the newest train run of that run_name in the experiment.

        test and predict runs are left out: they are never resumed, nor tested again.
        """
        if self.settings.run_id:
            try:
                return self.client.get_run(self.settings.run_id)
            except Exception as error:
                raise ConfigError(f"mlflow.run_id {self.settings.run_id!r}: {one_line(error)}",
                                  hint="pass the id of an existing run") from None
        if not self.settings.run_name or not experiment_id:
            return None
        found = self.client.search_runs([experiment_id],
                                        f"tags.`mlflow.runName` = '{quote(self.settings.run_name)}'",
                                        order_by=["attributes.start_time DESC"],
                                        max_results=SEARCHED_RUNS)
        return next((run for run in found if is_train_run(run)), None)

    def latest_train_run(self, experiment_id: str) -> Any | None:
        """The experiment's most recently finished train run (not a child run)."""
        if not experiment_id:
            return None
        found = self.client.search_runs([experiment_id], "attributes.status = 'FINISHED'",
                                        order_by=["attributes.end_time DESC"],
                                        max_results=SEARCHED_RUNS)
        return next((run for run in found if is_train_run(run) and is_top_level(run)), None)

    def open(self, tags: Mapping[str, str], new_run_tags: Mapping[str, str] | None = None) -> None:
        """Reopen the run of this name (resume) or start a new one, with ``new_run_tags`` too."""
        self.experiment = self.experiment_id()
        self._open_found(self.find_run(self.experiment), tags, new_run_tags)

    def open_tagged(self, tags: Mapping[str, str], match: Mapping[str, str],
                    new_run_tags: Mapping[str, str]) -> None:
        """The newest run carrying every tag of ``match``: only read when it FINISHED (a sweep
        job done already), else reopened (resumed); or a new run with ``match`` as tags too."""
        self.experiment = self.experiment_id()
        conditions = " and ".join(f"tags.`{key}` = '{quote(value)}'" for key, value in match.items())
        found = self.client.search_runs([self.experiment], conditions, max_results=1,
                                        order_by=["attributes.start_time DESC"])
        if found and found[0].info.status == "FINISHED":
            self._only_read(found[0])
        else:
            self._open_found(found[0] if found else None, tags, {**match, **new_run_tags})

    def _take(self, run: Any) -> None:
        """An existing run as this command's, and what it was (to put it back as it was)."""
        self.run_id, self.experiment, self.resumed = run.info.run_id, run.info.experiment_id, True
        self.source_run_id = self.run_id
        self.previous_tags, self.previous_status = dict(run.data.tags), run.info.status
        self.previous_end_time = run.info.end_time

    def _only_read(self, run: Any) -> None:
        self._take(run)
        self.read_only = True
        self.recorded_metrics = dict(run.data.metrics)

    def _open_found(self, existing: Any | None, tags: Mapping[str, str],
                    new_run_tags: Mapping[str, str] | None) -> None:
        if existing is None:
            self.create({**tags, **(new_run_tags or {})})
            return
        self._reopen(existing)
        self.retagged = {**tags, **self.settings.tags}
        self.set_tags(self.retagged)

    def create(self, tags: Mapping[str, str]) -> None:
        """A new run of the configured name, even when one of that name exists."""
        self.experiment = self.experiment or self.experiment_id()
        self.run_id = self.client.create_run(self.experiment, tags={**tags, **self.settings.tags},
                                             run_name=self.settings.run_name).info.run_id
        self.source_run_id = self.run_id

    def open_child(self, tags: Mapping[str, str], mode: str, named: bool) -> None:
        """A new run under the train run that ``test``/``predict`` use; that run is only read.

        ``named``: the user named the run (``run_name`` or ``run_id``); otherwise
        the experiment's most recently finished train run is used, and said so.
        """
        experiment = self.client.get_experiment_by_name(self.settings.experiment_name)
        experiment_id = experiment.experiment_id if experiment else ""
        named = named or bool(self.settings.run_id)
        source = self.find_run(experiment_id) if named else self.latest_train_run(experiment_id)
        if source is None:
            raise self._no_source(named)
        if not named:
            log.info("using the most recent finished train run %r (%s) of experiment %r; "
                     "pick another with mlflow.run_name=NAME or mlflow.run_id=ID",
                     source.info.run_name, source.info.run_id, self.settings.experiment_name)
        self.source_run_id, self.previous_tags = source.info.run_id, dict(source.data.tags)
        self.experiment = source.info.experiment_id
        child_tags = {**tags, **self.settings.tags, PARENT_TAG: source.info.run_id}
        self.run_id = self.client.create_run(self.experiment, tags=child_tags,
                                             run_name=f"{source.info.run_name}-{mode}").info.run_id

    def _no_source(self, named: bool) -> ConfigError:
        where = f"in experiment {self.settings.experiment_name!r} at {self.settings.tracking_uri}"
        if named:
            return ConfigError(f"no MLflow train run named {self.settings.run_name!r} {where}",
                               hint="pass ckpt_path=..., or mlflow.run_name= / mlflow.run_id= "
                                    "of a train run")
        return ConfigError(f"no finished train run {where} to take the checkpoint from",
                           hint="run 'serotiny train' first, or pass ckpt_path=PATH, "
                                "mlflow.run_name=NAME or mlflow.run_id=ID")

    def state(self) -> RunState:
        """The run opened: its ids, whether it was resumed, the train run's tags."""
        assert self.run_id is not None
        return RunState(self.run_id, self.experiment, self.resumed, self.previous_tags,
                        self.source_run_id or self.run_id, self.read_only, self.recorded_metrics)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """All tags in one write."""
        from mlflow.entities import RunTag

        self.guard("tags", self.client.log_batch, self.run_id,
                   tags=[RunTag(k, v) for k, v in tags.items()])

    def log_context(self, project_root: Path) -> None:
        """MLflow's context tags (user, source, git) about the project; the config's tags win."""
        context = context_tags(project_root)
        self.set_tags({k: v for k, v in context.items() if k not in self.settings.tags})

    def _reopen(self, run: Any) -> None:
        self._take(run)
        self.logged_through = {key: max((m.step for m in self.client.get_metric_history(self.run_id, key)),
                                        default=-1) for key in run.data.metrics}
        self.client.update_run(self.run_id, status="RUNNING")

    def log_config(self, config: Mapping[str, Any], artifact_name: str) -> None:
        """Params from the flattened ``config``; the config itself, as YAML, as an artifact.

        ``config`` comes as recorded: its secrets were masked in the command,
        the only place that knows which values came from the environment.
        """
        params = flatten(config)
        if self.resumed:  # MLflow params are immutable: keep the first run's values
            logged = self.client.get_run(self.run_id).data.params
            params = {k: v for k, v in params.items() if k not in logged}
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.guard("params", self.client.log_batch, self.run_id, params=items[start:start + 100])
        self.log_text(OmegaConf.to_yaml(OmegaConf.create(dict(config))), f"config/{artifact_name}")

    def log_manifest(self, path: Path, context: str) -> None:
        """The manifest as the run's dataset input, with its digest (``context``: train, test...)."""
        found = manifest_input(path, context)
        if found is not None:
            self.guard(f"dataset {path.name}", self._log_dataset, found)

    def _log_dataset(self, dataset: Any) -> None:
        """MLflow looks a dataset up, then inserts it: the jobs of a sweep logging one manifest
        at once race between the two, and the loser's insert breaks the dataset's unique key.
        The row exists then: a second try finds it."""
        try:
            self.client.log_inputs(self.run_id, datasets=[dataset])
        except Exception as error:
            if "UNIQUE constraint failed" not in str(error):
                raise
            self.client.log_inputs(self.run_id, datasets=[dataset])

    def log_metrics(self, metrics: Mapping[str, float], step: int,
                    timestamp_ms: int | None = None) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        # A resumed run redoes the epoch its last checkpoint did not cover: steps the run's
        # history holds already (logged just before the kill) are not logged a second time.
        batch = [Metric(key, value, stamp, step) for key, value in metrics.items()
                 if step > self.logged_through.get(key, -1)]
        if not batch:
            return
        self.guard(f"metrics at step {step}", self.client.log_batch, self.run_id, metrics=batch)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.guard(artifact_file, self.client.log_text, self.run_id, text, artifact_file)

    def log_artifact(self, path: Path, folder: str) -> None:
        self.guard(f"{folder}/{path.name}", self.client.log_artifact, self.run_id, str(path), folder)

    def upload_as(self, path: Path, folder: str, name: str) -> None:
        """Upload ``path`` as ``folder/name`` (a hard link, not a copy, where it can)."""
        if path.name == name:
            self.log_artifact(path, folder)
            return
        with linked_as(path, name) as target:
            self.log_artifact(target, folder)

    def download(self, artifact: str, destination: Path) -> Path | None:
        """An artifact of the run (for test/predict: of the train run) on local disk, or None."""
        destination.mkdir(parents=True, exist_ok=True)
        try:
            from mlflow.artifacts import download_artifacts

            local = download_artifacts(run_id=self.source_run_id or self.run_id, artifact_path=artifact,
                                       dst_path=str(destination),
                                       tracking_uri=self.settings.tracking_uri)
        except Exception:
            return None
        return Path(local)

    def log_model(self, spec: Any) -> None:
        """The run's MLflow model (a :class:`~serotiny_core.served.ModelSpec`) as artifact
        ``model``, registered when ``registered_model_name`` is set. A failure is a warning:
        the run and its checkpoints are kept either way."""
        import tempfile

        try:
            from serotiny_core.pyfunc import save

            # One name, so a resumed run's model folder is overwritten, not added to.
            with linked_as(Path(spec.checkpoint), "model.ckpt") as checkpoint, \
                    tempfile.TemporaryDirectory(prefix="serotiny-model-") as staging:
                folder = save(spec, checkpoint, Path(staging))
                self.guard("model", self.client.log_artifacts, self.run_id, str(folder), folder.name)
        except Exception as error:
            log.warning("the MLflow model of run %s was not written: %s", self.run_id, one_line(error))
            return
        if spec.registered_name and not self.unreachable:
            self.guard(f"registered model {spec.registered_name}", self._register, spec.registered_name)

    def _register(self, name: str) -> None:
        """A new version of registered model ``name`` (created on first use) from this run's model."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name)
        except MlflowException as error:  # it exists (maybe another job of a sweep just made it)
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{self.client.get_run(self.run_id).info.artifact_uri}/model"
        version = self.client.create_model_version(name, source, run_id=self.run_id)
        log.info("registered MLflow model %s version %s", name, version.version)

    def restore(self) -> None:
        """A reopened run back to its status and tags: the command failed before anything new ran."""
        self.ended = True
        self.set_tags({key: self.previous_tags[key] for key in self.retagged if key in self.previous_tags})
        for key in self.retagged.keys() - self.previous_tags.keys():
            self.guard(f"tag {key}", self.client.delete_tag, self.run_id, key)
        if self.previous_end_time is None:
            self.guard("run status", self.client.update_run, self.run_id, status=self.previous_status)
        else:  # MLflow's fluent API in the command (a notebook's) ended the run meanwhile: a new end time
            self.guard("run status", self.client.set_terminated, self.run_id, self.previous_status,
                       self.previous_end_time)

    def end(self, status: str, error: str | None = None) -> None:
        """Mark the run FINISHED, FAILED or KILLED (``error``: what failed, as a tag); name what
        could not be logged."""
        self.ended = True
        if self.unreachable and not is_server(self.settings.tracking_uri):
            self.unreachable = False  # a local store costs no wait to try again: the status matters most
        if error is not None:
            self.guard("error tag", self.client.set_tag, self.run_id, ERROR_TAG, error[:5000])
        elif status == "FINISHED" and self.resumed and ERROR_TAG in self.previous_tags:
            self.guard("error tag", self.client.delete_tag, self.run_id, ERROR_TAG)  # an earlier try's
        self.guard("run status", self.client.set_terminated, self.run_id, status)
        if self.not_logged:
            more = " ..." if len(self.not_logged) > 10 else ""
            log.warning("MLflow at %s did not record: %s%s; checkpoints and outputs are on local disk",
                        self.settings.tracking_uri, "; ".join(self.not_logged[:10]), more)


def quote(value: str) -> str:
    """A value inside a single-quoted string of an MLflow search filter."""
    return value.replace("'", "\\'")


# -- MLflow's context tags and the manifest as a dataset input ---------------------------------
#
# MLflow's context providers describe "the main file" (``sys.argv[0]``): here
# that would be this process's own module, and for the command the
# ``serotiny`` executable in some environment, whose git repository (if any)
# is not the project's. So they are asked about the project folder instead:
# ``mlflow.source.name`` is the project folder and the git tags
# (``mlflow.source.git.commit``, ``.branch``, ``.repoURL`` without
# credentials) are those of the checkout holding it, worktrees and
# submodules included. ``mlflow.source.git.dirty`` says whether tracked files
# were changed since that commit.


def context_tags(project_root: Path) -> dict[str, str]:
    """``resolve_tags()`` of MLflow's context providers, with the project as the main file
    (see the comment above)."""
    from mlflow.tracking.context.registry import resolve_tags

    saved = sys.argv[:]
    sys.argv[:] = [str(project_root)]
    try:
        tags = dict(resolve_tags())
    finally:
        sys.argv[:] = saved
    if GIT_COMMIT in tags:
        dirty = _dirty(project_root)
        if dirty is not None:
            tags[GIT_DIRTY] = str(dirty).lower()
    return tags


def _dirty(root: Path) -> bool | None:
    """Whether tracked files differ from HEAD (untracked files do not count, as in MLflow)."""
    try:
        import git

        return git.Repo(root, search_parent_directories=True).is_dirty(untracked_files=False)
    except Exception:  # noqa: BLE001 - no git executable, a broken checkout: no flag
        return None


def manifest_input(path: Path, context: str) -> object | None:
    """The manifest as an MLflow dataset input (name, source, digest, schema, row count).

    None when ``path`` is not a CSV or parquet file: the datamodule, not
    tracking, reports a manifest it cannot read.
    """
    if path.suffix not in (".csv", ".parquet") or not path.is_file():
        return None
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception:  # noqa: BLE001 - see above
        return None
    dataset = mlflow.data.from_pandas(frame, source=str(path), name=path.name)
    return DatasetInput(dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)])


# -- the serve loop ---------------------------------------------------------------------------


class _Forward(logging.Handler):
    """Log records go to the command, which logs them where its own go."""

    def __init__(self, replies: Connection) -> None:
        super().__init__(logging.INFO)
        self.replies = replies

    def emit(self, record: logging.LogRecord) -> None:
        try:
            remote.send(self.replies, ("log", record.levelno, record.getMessage()))
        except remote.GONE:
            pass


def portable(error: BaseException) -> tuple[type[SerotinyError], str, str | None]:
    """An error as the command can raise it again: serotiny's own, or a TrackingError."""
    if isinstance(error, SerotinyError):
        return type(error), error.message, error.hint
    return TrackingError, f"MLflow: {one_line(error)}", None


def _call(tracker: Tracker, method: str, args: tuple, kwargs: dict) -> Any:
    """``client.NAME`` calls MlflowClient (``logger.experiment``); the others, methods of
    :class:`~serotiny_core.tracking.remote.RunTracking`, the Tracker."""
    if method.startswith(remote.CLIENT_PREFIX):
        return getattr(tracker.client, method.removeprefix(remote.CLIENT_PREFIX))(*args, **kwargs)
    return getattr(tracker, remote.check_method(method))(*args, **kwargs)


def _answer(tracker: Tracker, method: str, args: tuple, kwargs: dict) -> tuple[bool, Any]:
    try:
        return True, _call(tracker, method, args, kwargs)
    except Exception as error:
        return False, portable(error)


def _start(settings: TrackingSettings) -> Tracker:
    """The Tracker, its store opened (the seconds this process exists to take off the command).

    Opening may create or upgrade a SQLite store: one process at a time.
    """
    with store_lock(settings.tracking_uri):
        tracker = Tracker(settings)
        tracker.client.get_experiment_by_name(settings.experiment_name)
    return tracker


def serve(requests: Connection, replies: Connection) -> None:
    """Serve command after command until the process that sends them has gone."""
    import mlflow  # noqa: F401  (first, while the command is still composing its config)
    # The default store's code (SQLAlchemy, alembic: ~1 s), also before the command asks.
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    while (taken := remote.take_over(requests)) is not None:
        streams, handover = taken
        _print_to(streams)
        if not serve_command(handover, requests, replies) or not _forget_stores():
            return
        remote.send(replies, remote.DONE)


def serve_command(handover: remote.Handover, requests: Connection, replies: Connection) -> bool:
    """One command's requests, answered until it says it is done (True) or is gone (False).
    A run it left open is ended as KILLED either way."""
    _take_place(handover)
    try:
        tracker, failure = _start(handover.settings), None
    except Exception as error:
        tracker, failure = None, portable(error)
    done = _answer_requests(tracker, failure, requests, replies)
    if tracker is not None and tracker.run_id and not tracker.ended:
        tracker.end("KILLED", "serotiny ended without closing the run")
    return done


def _answer_requests(tracker: Tracker | None, failure: tuple | None, requests: Connection,
                     replies: Connection) -> bool:
    while True:
        try:
            request = requests.recv()
        except remote.GONE:
            return False
        if request is None:  # the command is done
            return True
        number, method, args, kwargs = request
        reply = (False, failure) if tracker is None else _answer(tracker, method, args, kwargs)
        try:
            remote.send(replies, ("reply", number, *reply))
        except remote.GONE:  # killed while this process still had its requests to do
            return False


def _print_to(streams: list[int]) -> None:
    """What this process prints (MLflow's warnings, say) goes where the command's own output goes."""
    sys.stdout.flush()
    sys.stderr.flush()
    for target, received in zip(remote.STREAMS, streams):
        os.dup2(received, target)
        os.close(received)


def _take_place(handover: remote.Handover) -> None:
    """The command's folder and environment (its credentials, MLflow's variables), not the last one's."""
    os.chdir(handover.cwd)
    os.environ.clear()
    os.environ.update(handover.environ)


def _forget_stores() -> bool:
    """Empty what MLflow keeps of the stores a command used: their objects by URI, their
    SQLAlchemy engines (open SQLite files), the git facts of its project. The next command
    may track elsewhere, or to a store deleted and made again at the same path, from another
    checkout. False when it could not (another MLflow's internals): the process then ends,
    and the next command starts a fresh one."""
    try:
        from mlflow.tracking._model_registry.registry import ModelRegistryStoreRegistry
        from mlflow.tracking._tracking_service import utils
        from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry
        from mlflow.tracking.context.registry import _run_context_provider_registry

        TrackingStoreRegistry._get_store_with_resolved_uri.cache_clear()
        ModelRegistryStoreRegistry._get_store_with_resolved_uri.cache_clear()
        utils._artifact_repos_cache.clear()
        for module in ("mlflow.store.tracking.sqlalchemy_store",
                       "mlflow.store.model_registry.sqlalchemy_store"):
            engines = getattr(getattr(sys.modules.get(module), "SqlAlchemyStore", None), "_engine_map", {})
            while engines:
                engines.popitem()[1].dispose()
        for provider in _run_context_provider_registry:
            getattr(provider, "_cache", {}).clear()
    except Exception:  # noqa: BLE001 - ending is the answer: the command's run is ended already
        return False
    return True


def main() -> None:
    # Ctrl-C reaches the whole process group, and a scheduler ending a job (scancel, a time
    # limit) sends SIGTERM to every process of it: the command acts on both and then closes
    # the run through this process, which ends when the command is gone.
    for ignored in (signal.SIGINT, signal.SIGTERM):
        signal.signal(ignored, signal.SIG_IGN)
    requests = Connection(int(sys.argv[1]), writable=False)
    replies = Connection(int(sys.argv[2]), readable=False)
    logger = logging.getLogger("serotiny")
    logger.addHandler(_Forward(replies))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        serve(requests, replies)
    except remote.GONE:  # the command is gone; nothing is left to answer
        pass
    # Frozen, the garbage collector does not scan what MLflow imported at shutdown: ~0.1 s
    # instead of 1-2 s, for a command killed while it tracked, which waits for nothing.
    gc.freeze()


if __name__ == "__main__":
    main()
