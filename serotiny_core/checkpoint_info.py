"""Read what a checkpoint says about itself without running any code it holds.

A checkpoint is a pickle, and unpickling calls whatever functions the file
names: a checkpoint from elsewhere can run anything. serotiny only needs its
epoch counter to decide whether a resumed run has anything left to train, so
it reads ``data.pkl`` of torch's zip format with an unpickler that imports
nothing: every global the file names becomes an inert placeholder, and
tensor storages are not read at all.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from serotiny_core.errors import ConfigError


class _Inert:
    """Stands in for every class or function a checkpoint names; calling it does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> "_Inert":
        return _Inert()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _Inert

    def persistent_load(self, pid: Any) -> None:
        return None  # a tensor's storage: not needed, never read


def _top_level(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if name is None:
            raise ValueError("no data.pkl inside")
        with archive.open(name) as data:
            return _InertUnpickler(data).load()


def checkpoint_epoch(path: Path) -> int:
    """The 0-based ``epoch`` a Lightning checkpoint was saved at, -1 where it has none."""
    try:
        state = _top_level(path)
    except (OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError) as error:
        raise ConfigError(f"checkpoint {path} cannot be read: {error}",
                          hint="it is not a complete checkpoint written by torch.save; "
                               "delete it to train from scratch") from None
    epoch = state.get("epoch", -1) if isinstance(state, dict) else -1
    return epoch if isinstance(epoch, int) else -1
