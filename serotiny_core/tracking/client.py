"""The command's side of its MLflow process (:mod:`serotiny_core.tracking.worker`).

:class:`TrackingProcess` does what :class:`~serotiny_core.tracking.remote.RunTracking`
says, by message to a :class:`~serotiny_core.tracking.worker.Tracker` in
that process. Logging (params, tags, metrics, artifacts) is sent and not
waited for; only what the command needs an answer to waits: the opened
run's :meth:`~TrackingProcess.state` (whether it is resumed), a download, a
call through ``logger.experiment``. Replies and log records that came in
meanwhile are read whenever a request goes out, so the training loop never
blocks on MLflow. Ending the run waits for everything sent to be done.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Mapping

from serotiny_core import __version__
from serotiny_core.errors import TrackingError
from serotiny_core.redact import redact_text
from serotiny_core.tracking import remote
from serotiny_core.tracking.remote import RunState
from serotiny_core.tracking.settings import TrackingSettings, check_reachable

log = logging.getLogger("serotiny")
PENDING = None
WORKER = "serotiny_core.tracking.worker"


@dataclass
class _Worker:
    """An MLflow process, and the ends of its channels held here."""

    process: subprocess.Popen
    requests: Connection
    replies: Connection
    owner: int = field(default_factory=os.getpid)  # the process that started it

    @classmethod
    def spawn(cls) -> "_Worker":
        ours, theirs = socket.socketpair()
        replies_in, replies_out = os.pipe()
        process = subprocess.Popen([sys.executable, "-m", WORKER, str(theirs.fileno()), str(replies_out)],
                                   stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(), replies_out),
                                   start_new_session=True)
        theirs.close()
        os.close(replies_out)
        return cls(process, Connection(ours.detach(), readable=False), Connection(replies_in, writable=False))

    def hand_over(self, settings: TrackingSettings) -> bool:
        """This command to the process; False when it has ended."""
        try:
            remote.hand_over(self.requests, remote.Handover(os.getcwd(), dict(os.environ), settings))
        except remote.GONE:
            return False
        return True

    def stop(self) -> None:
        """End a process that serves no command (nothing of a run is lost)."""
        self.process.kill()
        self.ended()

    def ended(self) -> None:
        """Reap the process, which has ended or is ending, and close the channels to it."""
        self.process.wait()
        self.requests.close()
        self.replies.close()


_spare: _Worker | None = None


def start_early() -> None:
    """Start an MLflow process before the config is even composed; the job's tracker takes it.

    It only imports MLflow until it is told where to track, which the
    command knows seconds later; by then most of that import is done.
    """
    global _spare
    if _spare is None:
        _spare = _Worker.spawn()


def _take_spare() -> _Worker | None:
    global _spare
    spare, _spare = _spare, None
    return spare


def _keep(worker: _Worker) -> None:
    """A process done with its command serves the next command of this process."""
    global _spare
    if _spare is None and worker.owner == os.getpid():
        _spare = worker
    else:
        worker.stop()


@atexit.register
def _stop_spare() -> None:
    spare = _take_spare()
    if spare is not None and spare.owner == os.getpid():  # not in a child forked after it started
        spare.stop()


def _connect(settings: TrackingSettings) -> _Worker:
    """The kept (or early) process when it is still there, else a new one; handed this command."""
    worker = _take_spare()
    if worker is not None:
        if worker.hand_over(settings):
            return worker
        worker.stop()  # it ended while it waited (killed)
    worker = _Worker.spawn()
    worker.hand_over(settings)
    return worker


class TrackingProcess:
    """A Tracker in a process of its own, started at once so MLflow loads while the command does."""

    def __init__(self, settings: TrackingSettings) -> None:
        check_reachable(settings.tracking_uri, settings.credentials)
        self.settings = settings
        self._worker = _connect(settings)
        self._sent = 0
        self._awaited: dict[int, tuple[bool, Any] | None] = {}
        self._opening: tuple[int, int] | None = None  # the opening request, and the state's
        self._state: RunState | None = None
        self._failed = False
        self._closed = False

    # -- the run ---------------------------------------------------------------------------

    def open(self, tags: Mapping[str, str], new_run_tags: Mapping[str, str] | None = None) -> None:
        self._open("open", dict(tags), dict(new_run_tags or {}))

    def open_tagged(self, tags: Mapping[str, str], match: Mapping[str, str],
                    new_run_tags: Mapping[str, str]) -> None:
        self._open("open_tagged", dict(tags), dict(match), dict(new_run_tags))

    def create(self, tags: Mapping[str, str]) -> None:
        self._open("create", dict(tags))

    def open_child(self, tags: Mapping[str, str], mode: str, named: bool) -> None:
        self._open("open_child", dict(tags), mode, named)

    def _open(self, how: str, *args: Any) -> None:
        """Send the opening, and ask for the run's state right behind it: :meth:`state` waits
        for both (for the opening's error, if any), the command meanwhile goes on."""
        self._opening = self._send(how, *args, awaited=True), self._send("state", awaited=True)

    def state(self) -> RunState:
        if self._state is None:
            assert self._opening is not None, "open() first"
            opened, state = self._opening
            self._wait(opened)
            self._state = self._wait(state)
        return self._state

    @property
    def run_id(self) -> str | None:
        return self.state().run_id if self._state or self._opening else None

    @property
    def resumed(self) -> bool:
        return self.state().resumed

    @property
    def previous_tags(self) -> dict[str, str]:
        return self.state().previous_tags

    @property
    def source_run_id(self) -> str:
        return self.state().source_run_id

    def end(self, status: str, error: str | None = None) -> None:
        """Mark the run FINISHED, FAILED or KILLED once everything sent before is done."""
        self._send("end", status, error)
        self.close()

    def restore(self) -> None:
        """Put a resumed run back as it was: nothing new ran on it."""
        self._send("restore")
        self.close()

    # -- logging ---------------------------------------------------------------------------

    def log_context(self, project_root: Path) -> None:
        self._send("log_context", project_root)

    def log_config(self, config: Mapping[str, Any], artifact_name: str) -> None:
        self._send("log_config", dict(config), artifact_name)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._send("set_tags", dict(tags))

    def log_manifest(self, path: Path, context: str) -> None:
        self._send("log_manifest", path, context)

    def log_metrics(self, metrics: Mapping[str, float], step: int,
                    timestamp_ms: int | None = None) -> None:
        """Stamped now, when sent: the MLflow process may take them later."""
        self._send("log_metrics", dict(metrics), step, timestamp_ms or int(time.time() * 1000))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._send("log_text", text, artifact_file)

    def log_artifact(self, path: Path, folder: str) -> None:
        self._send("log_artifact", path, folder)

    def upload_as(self, path: Path, folder: str, name: str) -> None:
        self._send("upload_as", path, folder, name)

    def log_model(self, spec: Any) -> None:
        """Write and log the run's MLflow model (see :mod:`serotiny_core.pyfunc`) there, not here."""
        self._send("log_model", spec)

    def download(self, artifact: str, destination: Path) -> Path | None:
        return self._call("download", artifact, destination)

    def client_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``MlflowClient.<name>(...)`` in the MLflow process, for ``logger.experiment``."""
        return self._call(f"{remote.CLIENT_PREFIX}{name}", *args, **kwargs)

    def logger(self) -> Any:
        """A Lightning logger bound to this run (imports Lightning, so only when training)."""
        from serotiny_core.tracking.logger import RunLogger

        return RunLogger(self)

    # -- messages --------------------------------------------------------------------------

    def _send(self, method: str, *args: Any, awaited: bool = False, **kwargs: Any) -> int:
        self._sent += 1
        if awaited:
            self._awaited[self._sent] = PENDING
        self._send_message((self._sent, remote.check_method(method), args, kwargs))
        self._read_waiting()
        return self._sent

    def _send_message(self, message: Any) -> None:
        try:
            remote.send(self._worker.requests, message)
        except remote.GONE:
            self._warn_once(f"the MLflow process ended (exit code {self._worker.process.poll()})")

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._wait(self._send(method, *args, awaited=True, **kwargs))

    def _wait(self, number: int) -> Any:
        while self._awaited[number] is PENDING:
            try:
                self._handle(self._worker.replies.recv())
            except remote.GONE:
                raise TrackingError(f"the MLflow process ended (exit code {self._worker.process.wait()}) "
                                    "before answering", hint="rerun with --debug") from None
        ok, value = self._awaited.pop(number)  # type: ignore[misc]
        if ok:
            return value
        error_type, message, hint = value
        raise error_type(message, hint=hint)

    def _read_waiting(self) -> None:
        try:
            while self._worker.replies.poll(0):
                self._handle(self._worker.replies.recv())
        except remote.GONE:
            return

    def _handle(self, message: tuple) -> None:
        if message[0] == "log":
            log.log(message[1], message[2])
            return
        _, number, ok, value = message
        if number in self._awaited:
            self._awaited[number] = (ok, value)
        elif not ok:
            self._warn_once(value[1])

    def _warn_once(self, what: str) -> None:
        if not self._failed:
            self._failed = True
            log.warning("%s; training goes on, what MLflow did not take is on local disk", what)

    def close(self) -> None:
        """Let the MLflow process finish what was sent; then it serves this process's next command."""
        if self._closed:
            return
        self._closed = True
        self._send_message(None)
        while True:
            try:
                message = self._worker.replies.recv()
            except remote.GONE:
                self._worker.ended()
                return
            if message == remote.DONE:
                _keep(self._worker)
                return
            self._handle(message)


def run_tags(command: list[str], plugins: Any, output_dir: Path) -> dict[str, str]:
    """Where a run came from: serotiny and plugin versions, the command, the output folder.

    User, source and git tags come from MLflow's own context providers, in
    the MLflow process (see :func:`serotiny_core.tracking.worker.context_tags`).
    """
    tags = {"serotiny.version": __version__, "serotiny.command": redact_text(" ".join(["serotiny", *command])),
            "serotiny.output_dir": str(output_dir)}
    for info in plugins.loaded:
        tags[f"serotiny.plugin.{info.name}"] = pin(info)
    return tags


def pin(info: Any) -> str:
    """A plugin's distribution as a pip requirement: ``name==version``."""
    return f"{info.distribution}=={info.version}"
