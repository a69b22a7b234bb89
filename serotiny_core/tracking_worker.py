"""The process that talks to MLflow for one command: ``python -m serotiny_core.tracking_worker FD``.

Importing MLflow and opening its SQLAlchemy store costs seconds of CPU.
Done here, on another core, it overlaps the command's own start (Hydra,
torch, reading the manifest), and logging during training costs the loop
a pipe write. Requests come in on stdin, replies and log records go out
on the descriptor ``FD`` (see :mod:`serotiny_core.channel`); ``None`` says
the command is done. (Not the end of stdin: DataLoader workers forked by
the command hold a copy of its write end.)

The process ignores Ctrl-C (the command handles it and still sends the
run's last requests), and when the command goes away without ending its
run (killed), the run is marked KILLED here.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
from typing import Any

from serotiny_core import channel
from serotiny_core.errors import SerotinyError, TrackingError
from serotiny_core.plugins import one_line

REQUESTS = 0  # stdin


class _Forward(logging.Handler):
    """Log records go to the command, which logs them where its own go."""

    def __init__(self, fd: int) -> None:
        super().__init__(logging.INFO)
        self.fd = fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            channel.send(self.fd, ("log", record.levelno, record.getMessage()))
        except channel.Closed:
            pass


def portable(error: BaseException) -> tuple[type[SerotinyError], str, str | None]:
    """An error as the command can raise it again: serotiny's own, or a TrackingError."""
    if isinstance(error, SerotinyError):
        return type(error), error.message, error.hint
    return TrackingError, f"MLflow: {one_line(error)}", None


def _call(tracker: Any, method: str, args: tuple, kwargs: dict) -> Any:
    """``client.NAME`` calls MlflowClient (``logger.experiment``); others the Tracker."""
    target = tracker.client if method.startswith("client.") else tracker
    return getattr(target, method.removeprefix("client."))(*args, **kwargs)


def _answer(tracker: Any, method: str, args: tuple, kwargs: dict) -> tuple[bool, Any]:
    try:
        return True, _call(tracker, method, args, kwargs)
    except Exception as error:
        return False, portable(error)


def _start(settings: Any) -> Any:
    """The Tracker, its store opened (the seconds this process exists to take off the command).

    Opening may create or upgrade a SQLite store: one process at a time.
    """
    from serotiny_core.tracking import Tracker, store_lock

    with store_lock(settings.tracking_uri):
        tracker = Tracker(settings)
        tracker.client.get_experiment_by_name(settings.experiment_name)
    return tracker


def serve(replies: int) -> None:
    """Answer requests until the command says it is done, or is gone; then end a run it left open."""
    import mlflow  # noqa: F401  (first, while the command is still composing its config)
    # The default store's code (SQLAlchemy, alembic: ~1 s), also before the command asks: a
    # sweep's next job finds its process, started during the job before, ready to open the store.
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    settings = channel.receive(REQUESTS)
    try:
        tracker, failure = _start(settings), None
    except Exception as error:
        tracker, failure = None, portable(error)
    while True:
        try:
            request = channel.receive(REQUESTS)
        except channel.Closed:
            break
        if request is None:  # the command is done
            break
        number, method, args, kwargs = request
        reply = (False, failure) if failure is not None else _answer(tracker, method, args, kwargs)
        channel.send(replies, ("reply", number, *reply))
    if tracker is not None and tracker.run_id and not tracker.ended:
        tracker.end("KILLED", "serotiny ended without closing the run")


def main() -> None:
    # Ctrl-C reaches the whole process group, and a scheduler ending a job (scancel, a time
    # limit) sends SIGTERM to every process of it: the command acts on both and then closes
    # the run through this process, which ends when the command is gone.
    for ignored in (signal.SIGINT, signal.SIGTERM):
        signal.signal(ignored, signal.SIG_IGN)
    replies = int(sys.argv[1])
    logger = logging.getLogger("serotiny")
    logger.addHandler(_Forward(replies))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        serve(replies)
    except channel.Closed:  # the command is gone; nothing is left to answer
        pass
    # The command waits for this process to exit (once per job in a sweep). Frozen, the
    # garbage collector does not scan what MLflow imported at shutdown: ~0.1 s instead of 1-2 s.
    gc.freeze()


if __name__ == "__main__":
    main()
