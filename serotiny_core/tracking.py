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
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from serotiny_core import __version__
from serotiny_core.errors import ConfigError, TrackingError
from serotiny_core.plugins import one_line
from serotiny_core.redact import redact_text

log = logging.getLogger("serotiny")

MAX_PARAM_LENGTH = 6000  # MLflow 3's limit on a param value
MAX_KEY_LENGTH = 250
CHECKPOINT_CHOICES = ("last", "best", "all", False)
REACH_TIMEOUT_S = 10
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
    """The default store: SQLite and an artifact folder inside the project."""
    return {"tracking_uri": f"sqlite:///{root}/mlflow.db", "artifact_location": str(root / "mlartifacts")}


def check_reachable(uri: str, credentials: tuple[str, str] | None = None) -> None:
    """Fail in seconds, naming the URI, when an HTTP tracking server does not answer."""
    if uri.startswith("file:"):
        raise ConfigError(f"mlflow.tracking_uri {uri!r}: MLflow 3.13+ refuses file: stores",
                          hint="use sqlite:///path/to/mlflow.db or an http:// server")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return
    if not uri.startswith(("http://", "https://")):
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


@dataclass(frozen=True)
class RunState:
    """What the command needs to know of the run it opened."""

    run_id: str
    experiment_id: str
    resumed: bool
    previous_tags: dict[str, str]


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
        self.unreachable = False
        self.not_logged: list[str] = []

    def guard(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an MLflow call; on failure remember ``what`` and carry on.

        After the first failure the store is taken as gone: later calls are
        skipped (and named) instead of each waiting out MLflow's retries.
        """
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
            return experiment.experiment_id
        location = self.settings.artifact_location
        if location and "://" not in location:
            location = Path(location).resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def find_run(self, experiment_id: str) -> Any | None:
        """The run named by run_id, or the newest run of that run_name in the experiment."""
        if self.settings.run_id:
            try:
                return self.client.get_run(self.settings.run_id)
            except Exception as error:
                raise ConfigError(f"mlflow.run_id {self.settings.run_id!r}: {one_line(error)}",
                                  hint="pass the id of an existing run") from None
        if not self.settings.run_name or not experiment_id:
            return None
        quoted = self.settings.run_name.replace("'", "\\'")
        found = self.client.search_runs([experiment_id], f"tags.`mlflow.runName` = '{quoted}'",
                                        order_by=["attributes.start_time DESC"], max_results=1)
        return found[0] if found else None

    def open(self, tags: Mapping[str, str]) -> RunState:
        """Reopen the run of this name (resume) or start a new one."""
        self.experiment = self.experiment_id()
        existing = self.find_run(self.experiment)
        all_tags = {**tags, **self.settings.tags}
        if existing is None:
            self.run_id = self.client.create_run(self.experiment, tags=all_tags,
                                                 run_name=self.settings.run_name).info.run_id
            return self.state()
        self._reopen(existing)
        self.set_tags(all_tags)
        return self.state()

    def state(self) -> RunState:
        assert self.run_id is not None
        return RunState(self.run_id, self.experiment, self.resumed, self.previous_tags)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """All tags in one write."""
        from mlflow.entities import RunTag

        self.guard("tags", self.client.log_batch, self.run_id,
                   tags=[RunTag(k, v) for k, v in tags.items()])

    def open_existing(self) -> RunState:
        """The run ``test``/``predict`` refer to; an error when there is none."""
        experiment = self.client.get_experiment_by_name(self.settings.experiment_name)
        run = self.find_run(experiment.experiment_id if experiment else "")
        if run is None:
            raise ConfigError(
                f"no MLflow run named {self.settings.run_name!r} in experiment "
                f"{self.settings.experiment_name!r} at {self.settings.tracking_uri}",
                hint="pass ckpt_path=..., or mlflow.run_name= / mlflow.run_id= of a train run")
        self._reopen(run)
        return self.state()

    def _reopen(self, run: Any) -> None:
        self.run_id, self.experiment, self.resumed = run.info.run_id, run.info.experiment_id, True
        self.previous_tags = dict(run.data.tags)
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

    def log_metrics(self, metrics: Mapping[str, float], step: int, timestamp_ms: int) -> None:
        from mlflow.entities import Metric

        batch = [Metric(key, value, timestamp_ms, step) for key, value in metrics.items()]
        self.guard(f"metrics at step {step}", self.client.log_batch, self.run_id, metrics=batch)

    def log_artifact(self, path: Path, folder: str) -> None:
        self.guard(f"{folder}/{path.name}", self.client.log_artifact, self.run_id, str(path), folder)

    def upload_as(self, path: Path, folder: str, name: str) -> None:
        """Upload ``path`` as ``folder/name`` (a hard link, not a copy, where it can)."""
        import shutil
        import tempfile

        if path.name == name:
            self.log_artifact(path, folder)
            return
        with tempfile.TemporaryDirectory(dir=path.parent) as staging:
            target = Path(staging) / name
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
            self.log_artifact(target, folder)

    def download(self, artifact: str, destination: Path) -> Path | None:
        """An artifact of the run on local disk, or None when the run has no such artifact."""
        destination.mkdir(parents=True, exist_ok=True)
        try:
            from mlflow.artifacts import download_artifacts

            local = download_artifacts(run_id=self.run_id, artifact_path=artifact,
                                       dst_path=str(destination),
                                       tracking_uri=self.settings.tracking_uri)
        except Exception:
            return None
        return Path(local)

    def end(self, status: str, error: str | None = None) -> None:
        """Mark the run FINISHED, FAILED or KILLED; name what could not be logged."""
        self.ended = True
        if error is not None:
            self.guard("error tag", self.client.set_tag, self.run_id, "serotiny.error", error[:5000])
        self.guard("run status", self.client.set_terminated, self.run_id, status)
        if self.not_logged:
            more = " ..." if len(self.not_logged) > 10 else ""
            log.warning("MLflow at %s did not record: %s%s; checkpoints and outputs are on local disk",
                        self.settings.tracking_uri, "; ".join(self.not_logged[:10]), more)


def run_tags(command: list[str], plugins: Any, project_root: Path, output_dir: Path) -> dict[str, str]:
    """Where a run came from: serotiny and plugin versions, the command, the git commit."""
    tags = {"serotiny.version": __version__,
            "serotiny.command": redact_text(" ".join(["serotiny", *command])),
            "serotiny.output_dir": str(output_dir)}
    for info in plugins.loaded:
        tags[f"serotiny.plugin.{info.name}"] = f"{info.distribution}=={info.version}"
    commit = git_commit(project_root)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit(root: Path) -> str | None:
    """The project's HEAD commit, read from .git without running git."""
    head = root / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref_file = root / ".git" / ref[5:]
            if ref_file.is_file():
                return ref_file.read_text().strip()
            packed = (root / ".git" / "packed-refs").read_text().splitlines()
            return next((line.split()[0] for line in packed if line.endswith(ref[5:])), None)
        return ref or None
    except OSError:
        return None
