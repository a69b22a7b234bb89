"""What a command asks of its MLflow run, and how the request travels to the MLflow process.

:class:`RunTracking` is the one interface: :class:`~serotiny_core.tracking.worker.Tracker`
does each call against MLflow, in the MLflow process;
:class:`~serotiny_core.tracking.client.TrackingProcess`, in the command,
sends the same call there by name. Only names of :class:`RunTracking` are
sent, plus ``client.NAME`` for ``logger.experiment`` (MlflowClient's own
methods, for callbacks that use them).

Messages are pickled objects, one channel each way, as
:class:`multiprocessing.connection.Connection` objects over raw file
descriptors: with no buffering in between, ``poll(0)`` tells the truth
about whether a reply is waiting, so the training loop drains replies
without ever blocking on them. Requests travel on a Unix socket, not a
pipe: one MLflow process serves command after command in one process (the
jobs of a sweep, commands run from a notebook or a test), and each command
hands it its own stdout and stderr along with a :class:`Handover`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

from serotiny_core.tracking.settings import TrackingSettings

# What a Connection raises when the other end has gone away: EOFError reading, OSError writing.
GONE = (EOFError, OSError)
# What the MLflow process replies when it is done with a command: its run is ended.
DONE = ("done",)
STREAMS = (1, 2)  # stdout and stderr, handed to the MLflow process by each command


@dataclass(frozen=True)
class Handover:
    """What the MLflow process takes on from the command it serves next: where the command
    runs (its folder and environment: credentials, MLflow's variables) and where it tracks.
    The command's stdout and stderr come with it, as file descriptors."""

    cwd: str
    environ: dict[str, str]
    settings: TrackingSettings


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


class RunTracking(Protocol):
    """One MLflow run: opened (or reopened), logged to, ended exactly once.

    Logging never raises: what MLflow did not take is named in one warning
    when the run ends. Opening raises a :class:`~serotiny_core.errors.SerotinyError`
    (no such run to test, a store that cannot be opened), at :meth:`state`
    at the latest.
    """

    def open(self, tags: Mapping[str, str], new_run_tags: Mapping[str, str] | None = None) -> None:
        """Reopen the train run of this name (resume) or start a new one, with ``new_run_tags`` too."""

    def open_tagged(self, tags: Mapping[str, str], match: Mapping[str, str],
                    new_run_tags: Mapping[str, str]) -> None:
        """The newest run carrying every tag of ``match`` (a sweep's job): only read when it
        FINISHED, else reopened (resumed); or a new run with ``match`` as tags too."""

    def create(self, tags: Mapping[str, str]) -> None:
        """A new run of the configured name, even when one of that name exists."""

    def open_child(self, tags: Mapping[str, str], mode: str, named: bool) -> None:
        """A new run under the train run ``test``/``predict`` use (``named``: by the user)."""

    def state(self) -> RunState:
        """The run opened: its ids, whether it was resumed, the train run's tags."""

    def log_context(self, project_root: Path) -> None:
        """MLflow's context tags (user, source, git) of the project; the config's tags win."""

    def log_config(self, config: Mapping[str, Any], artifact_name: str) -> None:
        """Params from ``config`` (as recorded: secrets already masked, see
        :func:`serotiny_core.redact.recordable`) and its YAML as ``config/artifact_name``."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """All tags in one write."""

    def log_manifest(self, path: Path, context: str) -> None:
        """The manifest as the run's dataset input (``context``: train, test...)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int,
                    timestamp_ms: int | None = None) -> None:
        """Metrics at ``step``, stamped ``timestamp_ms`` (default: now)."""

    def log_text(self, text: str, artifact_file: str) -> None:
        """``text`` as the run's artifact ``artifact_file``."""

    def log_artifact(self, path: Path, folder: str) -> None:
        """The file ``path`` as an artifact in ``folder``."""

    def upload_as(self, path: Path, folder: str, name: str) -> None:
        """The file ``path`` as artifact ``folder/name``."""

    def log_model(self, spec: Any) -> None:
        """The run's MLflow model (a :class:`~serotiny_core.served.ModelSpec`), registered if asked."""

    def download(self, artifact: str, destination: Path) -> Path | None:
        """An artifact of the run (for test/predict: of the train run) on local disk, or None."""

    def restore(self) -> None:
        """A reopened run back to its status and tags: the command failed before anything new ran."""

    def end(self, status: str, error: str | None = None) -> None:
        """Mark the run FINISHED, FAILED or KILLED (``error``: what failed, as a tag)."""


METHODS = frozenset(name for name in vars(RunTracking) if not name.startswith("_"))
CLIENT_PREFIX = "client."  # MlflowClient's own methods, for ``logger.experiment``


def check_method(name: str) -> str:
    """``name`` when it may be called remotely: a method of :class:`RunTracking`, or ``client.*``."""
    if name not in METHODS and not name.startswith(CLIENT_PREFIX):
        raise ValueError(f"{name!r} is not a method of RunTracking")
    return name


def send(connection: Connection, message: Any) -> None:
    """Write one message whole (raises one of :data:`GONE` when nobody reads any more).

    Ctrl-C and SIGTERM wait until the message is written: a Connection
    writes the header and the body of a message over 16 KiB separately, and a
    KeyboardInterrupt between the two would leave half a message in the
    pipe, and every later message unreadable.
    """
    with _signals_held():
        connection.send(message)


def hand_over(requests: Connection, handover: Handover) -> None:
    """Give the MLflow process this command: its stdout and stderr, then ``handover``
    (raises one of :data:`GONE` when that process has ended)."""
    with _signals_held(), socket.socket(fileno=os.dup(requests.fileno())) as channel:
        socket.send_fds(channel, [b"H"], list(STREAMS))
        requests.send(handover)


def take_over(requests: Connection) -> tuple[list[int], Handover] | None:
    """The next command's stdout and stderr descriptors and :class:`Handover`; None when
    the process that sends commands has gone."""
    with socket.socket(fileno=os.dup(requests.fileno())) as channel:
        data, streams, _, _ = socket.recv_fds(channel, 1, len(STREAMS))
    if not data:
        return None
    try:
        return streams, requests.recv()
    except GONE:
        return None


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
