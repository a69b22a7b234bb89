"""Where and how a command tracks to MLflow: the ``mlflow`` config group, checked in the command.

Everything here runs in the command's own process, before MLflow is
imported anywhere: the settings are validated and a dead server or a bad
URI is reported in seconds (:func:`check_reachable`); the MLflow process
(:mod:`serotiny_core.tracking.worker`) gets the settings once they are good.
"""

from __future__ import annotations

import base64
import contextlib
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from serotiny_core.errors import ConfigError, TrackingError

MODE_TAG = "serotiny.mode"  # train, test or predict: which command made the run
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI shows the run under its parent
SWEEP_JOB_TAG = "serotiny.sweep_job"  # a sweep job's overrides, on its run (see serotiny_core.sweep)
CHECKPOINT_CHOICES = ("last", "best", "all", False)
REACH_TIMEOUT_S = 10
STORE_LOCK_TIMEOUT_S = 600
USERNAME_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"


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
