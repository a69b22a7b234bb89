"""MLflow tracking for one command: open (or reopen) a run, log, close it.

The run's lifecycle is ours, not the Lightning logger's: a finished fit is
FINISHED, an exception FAILED (with the error as a tag), Ctrl-C or SIGTERM
KILLED. Only global rank 0 talks to MLflow, and it does so from a process
of its own (:mod:`serotiny_core.tracking_process`), where the
:class:`Tracker` here runs. A server that goes away during training never
stops the training: what could not be logged is collected and named in one
warning at the end.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from omegaconf import DictConfig, OmegaConf

from serotiny_core import __version__
from serotiny_core.errors import ConfigError, TrackingError
from serotiny_core.plugins import one_line
from serotiny_core.redact import redact_text

log = logging.getLogger("serotiny")

MODE_TAG = "serotiny.mode"  # train, test or predict: which command made the run
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI shows the run under its parent
SWEEP_JOB_TAG = "serotiny.sweep_job"  # a sweep job's overrides, on its run (see serotiny_core.sweep)
ERROR_TAG = "serotiny.error"
SEARCHED_RUNS = 100  # newest runs looked at when a name or "the latest train run" is looked for
MAX_PARAM_LENGTH = 6000  # MLflow 3's limit on a param value
MAX_KEY_LENGTH = 250
CHECKPOINT_CHOICES = ("last", "best", "all", False)
REACH_TIMEOUT_S = 10
STORE_LOCK_TIMEOUT_S = 600
# MLflow retries an unreachable server for minutes by default; a few short
# tries keep a dead server from stalling a training loop.
USERNAME_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


@dataclass
class TrackingSettings:
    """The ``mlflow`` config group, validated."""

    tracking_uri: str
    experiment_name: str
    run_name: str | None = None
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    artifact_location: str | None = None
    log_checkpoints: str | bool = "last"
    log_model: bool = True  # the run's MLflow model (artifact ``model``), at the end of train
    registered_model_name: str | None = None  # registers that model: a new version per run
    # user and password taken out of tracking_uri; never written, never printed
    credentials: tuple[str, str] | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, node: Any, default_experiment: str) -> "TrackingSettings | None":
        """None when ``tracking_uri`` is null: tracking is off."""
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else {}
        known = set(cls.__dataclass_fields__) - {"credentials"}
        unknown = sorted(set(values) - known - {"autolog"})
        if unknown:
            raise ConfigError(f"mlflow: unknown key {unknown[0]!r}",
                              hint=f"valid keys: {', '.join(sorted(known))}")
        if not values.get("tracking_uri"):
            return None
        if values.get("log_checkpoints", "last") not in CHECKPOINT_CHOICES:
            raise ConfigError(f"mlflow.log_checkpoints: {values['log_checkpoints']!r} is not one of "
                              "last, best, all, false")
        if not isinstance(values.get("log_model", True), bool):
            raise ConfigError(f"mlflow.log_model: {values['log_model']!r} is not true or false")
        values.pop("autolog", None)
        values["experiment_name"] = values.get("experiment_name") or default_experiment
        values["tags"] = {str(k): str(v) for k, v in (values.get("tags") or {}).items()}
        values["tracking_uri"], values["credentials"] = split_credentials(str(values["tracking_uri"]))
        return cls(**values)

    def use_credentials(self) -> None:
        """Hand the URI's user and password to MLflow the way it reads them: from its environment."""
        if self.credentials is not None:
            os.environ[USERNAME_ENV], os.environ[PASSWORD_ENV] = self.credentials


def split_credentials(uri: str) -> tuple[str, tuple[str, str] | None]:
    """``http://user:pass@host`` -> (``http://host``, (user, pass)); other URIs as they are."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or parts.password is None:
        return uri, None
    host = parts.netloc.rsplit("@", 1)[1]
    user = urllib.parse.unquote(parts.username or "")
    return parts._replace(netloc=host).geturl(), (user, urllib.parse.unquote(parts.password))


def embedded_store(root: Path) -> dict[str, str]:
    """The default store: SQLite inside the project (artifacts beside it, see :func:`artifact_location`)."""
    return {"tracking_uri": f"sqlite:///{root}/mlflow.db"}


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def artifact_location(settings: TrackingSettings) -> str | None:
    """Where a new experiment keeps its artifacts, as a URI.

    The user's ``artifact_location`` when set; else, beside a SQLite store,
    its ``mlartifacts`` folder; else None, so that a tracking server chooses
    (``mlflow-artifacts:/``, its own artifact store, which every machine and
    the UI can read) rather than a folder on this machine's disk.
    """
    location = settings.artifact_location
    uri = settings.tracking_uri
    if not location and uri.startswith("sqlite:///"):
        location = str(Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts")
    if location and not urllib.parse.urlparse(location).scheme:
        location = Path(location).resolve().as_uri()
    return location or None


def is_local(location: str) -> bool:
    """A folder (``/data/mlartifacts``, ``file:///...``): on one machine's disk only."""
    return urllib.parse.urlparse(location).scheme in ("", "file")


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Held while a SQLite store is opened: MLflow creates or upgrades its tables then.

    Two processes doing that at once (two commands started together on a
    fresh project, the jobs of a sweep) break the store for good, half
    migrated. ``filelock`` (installed with torch) locks ``mlflow.db.lock``
    beside the store with the OS's own file locks, released if a process
    dies; a server serialises this itself, so other URIs need no lock.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock, Timeout

    lock = f"{uri.removeprefix('sqlite:///')}.lock"
    try:
        with FileLock(lock, timeout=STORE_LOCK_TIMEOUT_S):
            yield
    except Timeout:
        raise TrackingError(f"the MLflow store {uri} stayed locked by another command for "
                            f"{STORE_LOCK_TIMEOUT_S} s ({lock})",
                            hint="wait for the other serotiny command, or end it") from None


def check_reachable(uri: str, credentials: tuple[str, str] | None = None) -> None:
    """Fail in seconds, naming the URI, when an HTTP tracking server does not answer."""
    if uri.startswith("file:"):
        raise ConfigError(f"mlflow.tracking_uri {uri!r}: MLflow 3.13+ refuses file: stores",
                          hint="use sqlite:///path/to/mlflow.db or an http:// server")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return
    if not is_server(uri):
        return
    request = urllib.request.Request(f"{uri.rstrip('/')}/health")
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=REACH_TIMEOUT_S):
            pass
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(f"cannot reach the MLflow tracking server at {uri}: {reason}",
                            hint="start it, fix mlflow.tracking_uri, or turn tracking off "
                                 "with mlflow.tracking_uri=null") from None


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


@dataclass(frozen=True)
class RunState:
    """What the command needs to know of the run it opened."""

    run_id: str
    experiment_id: str
    resumed: bool
    previous_tags: dict[str, str]
    source_run_id: str
    read_only: bool = False  # a finished run found again, only read (a sweep's finished job)
    metrics: dict[str, float] = field(default_factory=dict)  # a read-only run's recorded metrics


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
    """One MLflow run: opened or reopened at start, ended exactly once.

    Its callers run :func:`check_reachable` first, in the command's own
    process, where a dead server is reported before MLflow is even imported.
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
        self.read_only = False  # a finished run found again: nothing is written to it
        self.recorded_metrics: dict[str, float] = {}  # that run's metrics (their last values)
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

    def open(self, tags: Mapping[str, str], new_run_tags: Mapping[str, str] | None = None) -> RunState:
        """Reopen the run of this name (resume) or start a new one, with ``new_run_tags`` too."""
        self.experiment = self.experiment_id()
        return self._open_found(self.find_run(self.experiment), tags, new_run_tags)

    def open_tagged(self, tags: Mapping[str, str], match: Mapping[str, str],
                    new_run_tags: Mapping[str, str]) -> RunState:
        """The newest run carrying every tag of ``match``: only read when it FINISHED (a sweep
        job done already), else reopened (resumed); or a new run with ``match`` as tags too."""
        self.experiment = self.experiment_id()
        conditions = " and ".join(f"tags.`{key}` = '{quote(value)}'" for key, value in match.items())
        found = self.client.search_runs([self.experiment], conditions, max_results=1,
                                        order_by=["attributes.start_time DESC"])
        if found and found[0].info.status == "FINISHED":
            return self._only_read(found[0])
        return self._open_found(found[0] if found else None, tags, {**match, **new_run_tags})

    def _only_read(self, run: Any) -> RunState:
        self.run_id, self.experiment, self.resumed = run.info.run_id, run.info.experiment_id, True
        self.source_run_id, self.read_only = self.run_id, True
        self.previous_tags, self.previous_status = dict(run.data.tags), run.info.status
        self.recorded_metrics = dict(run.data.metrics)
        return self.state()

    def _open_found(self, existing: Any | None, tags: Mapping[str, str],
                    new_run_tags: Mapping[str, str] | None) -> RunState:
        if existing is None:
            return self.create({**tags, **(new_run_tags or {})})
        self._reopen(existing)
        self.retagged = {**tags, **self.settings.tags}
        self.set_tags(self.retagged)
        return self.state()

    def create(self, tags: Mapping[str, str]) -> RunState:
        """A new run of the configured name, even when one of that name exists."""
        self.experiment = self.experiment or self.experiment_id()
        self.run_id = self.client.create_run(self.experiment, tags={**tags, **self.settings.tags},
                                             run_name=self.settings.run_name).info.run_id
        self.source_run_id = self.run_id
        return self.state()

    def open_child(self, tags: Mapping[str, str], mode: str, named: bool) -> RunState:
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
        return self.state()

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
        from serotiny_core.run_context import context_tags

        context = context_tags(project_root)
        self.set_tags({k: v for k, v in context.items() if k not in self.settings.tags})

    def _reopen(self, run: Any) -> None:
        self.run_id, self.experiment, self.resumed = run.info.run_id, run.info.experiment_id, True
        self.source_run_id = self.run_id
        self.previous_tags, self.previous_status = dict(run.data.tags), run.info.status
        self.client.update_run(self.run_id, status="RUNNING")

    def log_config(self, container: Mapping[str, Any], text: str, artifact_name: str) -> None:
        """Params from the flattened config; the config itself (its YAML ``text``) as an artifact."""
        params = flatten(container)
        if self.resumed:  # MLflow params are immutable: keep the first run's values
            logged = self.client.get_run(self.run_id).data.params
            params = {k: v for k, v in params.items() if k not in logged}
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.guard("params", self.client.log_batch, self.run_id, params=items[start:start + 100])
        self.guard(f"config/{artifact_name}", self.client.log_text, self.run_id, text,
                   f"config/{artifact_name}")

    def log_manifest(self, path: Path, context: str) -> None:
        """The manifest as the run's dataset input, with its digest (``context``: train, test...)."""
        from serotiny_core.run_context import manifest_input

        found = manifest_input(path, context)
        if found is not None:
            self.guard(f"dataset {path.name}", self.client.log_inputs, self.run_id, datasets=[found])

    def log_metrics(self, metrics: Mapping[str, float], step: int, timestamp_ms: int) -> None:
        from mlflow.entities import Metric

        batch = [Metric(key, value, timestamp_ms, step) for key, value in metrics.items()]
        self.guard(f"metrics at step {step}", self.client.log_batch, self.run_id, metrics=batch)

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
        self.guard("run status", self.client.update_run, self.run_id, status=self.previous_status)

    def end(self, status: str, error: str | None = None) -> None:
        """Mark the run FINISHED, FAILED or KILLED; name what could not be logged."""
        self.ended = True
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


def run_tags(command: list[str], plugins: Any, output_dir: Path) -> dict[str, str]:
    """Where a run came from: serotiny and plugin versions, the command, the output folder.

    User, source and git tags come from MLflow's own context providers, in
    the MLflow process (see :mod:`serotiny_core.run_context`).
    """
    tags = {"serotiny.version": __version__, "serotiny.command": redact_text(" ".join(["serotiny", *command])),
            "serotiny.output_dir": str(output_dir)}
    for info in plugins.loaded:
        tags[f"serotiny.plugin.{info.name}"] = pin(info)
    return tags


def pin(info: Any) -> str:
    """A plugin's distribution as a pip requirement: ``name==version``."""
    return f"{info.distribution}=={info.version}"
