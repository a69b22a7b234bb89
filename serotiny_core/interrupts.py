"""Ctrl-C and SIGTERM, never lost.

Python turns SIGINT into a KeyboardInterrupt raised wherever the main thread
is; raised inside a hook whose errors Python ignores (logging's at-fork
handler runs at every fork: DataLoader workers, the MLflow process) it is
swallowed, and the sweep goes on as if nothing happened. DataLoader workers
get the same Ctrl-C and exit, which the fit then reports as a worker error.
So a signal is also remembered: :func:`check` raises it again where serotiny
can act on it (every batch, the end of a job, the start of the next one), and
an error that follows it counts as the interruption it is.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

_received: list[int] = []


def requested() -> bool:
    """Whether Ctrl-C or SIGTERM arrived in this process."""
    return bool(_received)


def check() -> None:
    """Raise KeyboardInterrupt when a signal arrived that was not acted on."""
    if _received:
        raise KeyboardInterrupt(f"signal {_received[0]}")


def _interrupt(signum: int, frame: Any) -> None:
    _received.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def caught() -> Iterator[None]:
    """SIGINT and SIGTERM (a scheduler ending a job) raise KeyboardInterrupt and are remembered.

    The outermost block starts afresh: a command run again in one process
    (tests, notebooks) does not inherit the last one's Ctrl-C.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is not _interrupt:
        _received.clear()
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
