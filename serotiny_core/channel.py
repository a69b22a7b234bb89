"""Messages between serotiny and its MLflow process: pickled, length-prefixed frames on pipes.

Frames are read and written on raw file descriptors, with no buffering in
between, so that ``select`` tells the truth about whether a whole message
is waiting: the training loop drains replies without ever blocking on them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
from typing import Any, Iterator

HEADER = struct.Struct("!I")


class Closed(Exception):
    """The other end has gone away."""


def send(fd: int, message: Any) -> None:
    """Write one message whole (raises ``Closed`` when nobody reads any more).

    Ctrl-C and SIGTERM wait until the message is written: a KeyboardInterrupt
    between two writes of a large frame would leave half of it in the pipe,
    and every later message unreadable.
    """
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(HEADER.pack(len(payload)) + payload)
    with _signals_held():
        try:
            while data:
                data = data[os.write(fd, data):]
        except (BrokenPipeError, OSError) as error:
            raise Closed(str(error)) from None


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise Closed("end of stream")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int) -> Any:
    """The next message; blocks until one arrives (``Closed`` at the end of the stream)."""
    (size,) = HEADER.unpack(_read_exactly(fd, HEADER.size))
    return pickle.loads(_read_exactly(fd, size))


def waiting(fd: int) -> bool:
    """Whether a message (or the end of the stream) can be read without waiting."""
    return bool(select.select([fd], [], [], 0)[0])
