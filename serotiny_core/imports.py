"""Import what a dotted path names, as configs and component declarations spell it.

A module of its own, needing nothing but :mod:`importlib`, so that it can be
part of the light ``serotiny_core`` package that plugins import.
"""

from __future__ import annotations

import importlib
from typing import Any


def import_object(path: str) -> Any:
    """Import ``pkg.mod.Attr`` (or ``pkg.mod:Attr``): the longest importable module, then attributes.

    A module that exists but fails inside (its own missing dependency, a
    syntax error) raises that error, not a misleading 'no such module'.
    """
    parts = path.replace(":", ".").split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
                continue
            raise
        for position in range(split, len(parts)):
            if not hasattr(obj, parts[position]):
                raise ImportError(f"cannot import {'.'.join(parts[:position + 1])!r}")
            obj = getattr(obj, parts[position])
        return obj
    raise ImportError(f"no module named {parts[0]!r}")
