"""The command's side of its MLflow process (:mod:`serotiny_core.tracking_worker`).

:class:`TrackingProcess` offers what a :class:`~serotiny_core.session.Session`
asks of a :class:`~serotiny_core.tracking.Tracker`, by message. Logging
(params, tags, metrics, artifacts) is sent and not waited for; only what
the command needs an answer to waits: whether the run is resumed, a
download, a call through ``logger.experiment``. Replies and log records
that came in meanwhile are read whenever a request goes out, so the
training loop never blocks on MLflow. Ending the run waits for everything
sent to be done.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from serotiny_core import channel
from serotiny_core.errors import TrackingError
from serotiny_core.redact import recordable
from serotiny_core.tracking import RunState, TrackingSettings, check_reachable

log = logging.getLogger("serotiny")
PENDING = None
_spare: tuple[subprocess.Popen, int] | None = None


def _spawn() -> tuple[subprocess.Popen, int]:
    """A new MLflow process, and the descriptor its replies come in on."""
    replies, write_end = os.pipe()
    process = subprocess.Popen([sys.executable, "-m", "serotiny_core.tracking_worker", str(write_end)],
                               stdin=subprocess.PIPE, pass_fds=(write_end,), start_new_session=True)
    os.close(write_end)
    return process, replies


def start_early() -> None:
    """Start an MLflow process before the config is even composed; the job's tracker takes it.

    It only imports MLflow until it is told where to track, which the
    command knows seconds later; by then most of that import is done.
    """
    global _spare
    if _spare is None:
        _spare = _spawn()


def _take_spare() -> tuple[subprocess.Popen, int] | None:
    global _spare
    spare, _spare = _spare, None
    return spare


def discard_spare() -> None:
    """Stop a process started early that no job took (tracking off, or the command failed)."""
    spare = _take_spare()
    if spare is not None:
        spare[0].kill()
        spare[0].wait()
        if spare[0].stdin:
            spare[0].stdin.close()
        os.close(spare[1])


class TrackingProcess:
    """A Tracker in a process of its own, started at once so MLflow loads while the command does."""

    def __init__(self, settings: TrackingSettings) -> None:
        check_reachable(settings.tracking_uri, settings.credentials)
        self.settings = settings
        self._process, self._replies = _take_spare() or _spawn()
        self._requests = self._process.stdin.fileno() if self._process.stdin else -1
        self._sent = 0
        self._awaited: dict[int, tuple[bool, Any] | None] = {}
        self._opening: int | None = None
        self._state: RunState | None = None
        self._failed = False
        self._closed = False
        self._send_message(settings)

    # -- the run ---------------------------------------------------------------------------

    def open(self, tags: Mapping[str, str], project_root: Path, how: str = "open",
             *args: Any) -> None:
        """Open the run :meth:`Tracker.open`, ``create`` or ``open_child`` does; :attr:`state`
        waits for it (not for the git tags of ``project_root``, which follow)."""
        self._opening = self._send(how, dict(tags), *args, awaited=True)
        self._send("log_context", project_root)

    @property
    def state(self) -> RunState:
        if self._state is None:
            assert self._opening is not None, "open() first"
            self._state = self._wait(self._opening)
        return self._state

    @property
    def run_id(self) -> str | None:
        return self.state.run_id if self._state or self._opening else None

    @property
    def resumed(self) -> bool:
        return self.state.resumed

    @property
    def previous_tags(self) -> dict[str, str]:
        return self.state.previous_tags

    @property
    def source_run_id(self) -> str:
        return self.state.source_run_id

    def end(self, status: str, error: BaseException | None = None) -> None:
        """Mark the run FINISHED, FAILED or KILLED once everything sent before is done."""
        self._send("end", status, f"{type(error).__name__}: {error}" if error else None)
        self.close()

    def restore(self) -> None:
        """Put a resumed run back as it was: nothing new ran on it."""
        self._send("restore")
        self.close()

    # -- logging ---------------------------------------------------------------------------

    def log_config(self, cfg: DictConfig, artifact_name: str) -> None:
        """Params and the config artifact, without secrets (see :mod:`serotiny_core.redact`)."""
        recorded = recordable(cfg)
        self._send("log_config", recorded, OmegaConf.to_yaml(OmegaConf.create(recorded)), artifact_name)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._send("set_tags", dict(tags))

    def log_manifest(self, path: Path, context: str) -> None:
        self._send("log_manifest", path, context)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._send("client.log_text", self.run_id, text, artifact_file)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._send("log_metrics", dict(metrics), step, int(time.time() * 1000))

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
        return self._call(f"client.{name}", *args, **kwargs)

    def logger(self) -> Any:
        """A Lightning logger bound to this run (imports Lightning, so only when training)."""
        from serotiny_core.run_logger import RunLogger

        return RunLogger(self)

    # -- messages --------------------------------------------------------------------------

    def _send(self, method: str, *args: Any, awaited: bool = False, **kwargs: Any) -> int:
        self._sent += 1
        if awaited:
            self._awaited[self._sent] = PENDING
        self._send_message((self._sent, method, args, kwargs))
        self._read_waiting()
        return self._sent

    def _send_message(self, message: Any) -> None:
        try:
            channel.send(self._requests, message)
        except channel.Closed:
            self._warn_once(f"the MLflow process ended (exit code {self._process.poll()})")

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._wait(self._send(method, *args, awaited=True, **kwargs))

    def _wait(self, number: int) -> Any:
        while self._awaited[number] is PENDING:
            try:
                self._handle(channel.receive(self._replies))
            except channel.Closed:
                raise TrackingError(f"the MLflow process ended (exit code {self._process.wait()}) "
                                    "before answering", hint="rerun with --debug") from None
        ok, value = self._awaited.pop(number)  # type: ignore[misc]
        if ok:
            return value
        error_type, message, hint = value
        raise error_type(message, hint=hint)

    def _read_waiting(self) -> None:
        while channel.waiting(self._replies):
            try:
                self._handle(channel.receive(self._replies))
            except channel.Closed:
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
        """Let the MLflow process finish what was sent, and wait for it."""
        if self._closed:
            return
        self._closed = True
        self._send_message(None)
        if self._process.stdin:
            self._process.stdin.close()
        while True:
            try:
                self._handle(channel.receive(self._replies))
            except channel.Closed:
                break
        self._process.wait()
        os.close(self._replies)
