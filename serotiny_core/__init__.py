"""serotiny: discover plugin components, compose Hydra configs, train with Lightning.

The names in ``__all__`` are the public API, what plugins build on: they
keep working across minor versions. Every other module and name of
``serotiny_core`` is internal and may change in any release.

This package stays light to import: never torch, Lightning or MLflow, so
that ``serotiny list-components`` and ``--help`` are fast, and not even
pluggy until ``hookimpl`` is first used, so that the MLflow process (which
loads no plugins) never imports it. The heavy modules are imported by the
commands that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serotiny_core.batch import INDEX_KEY
from serotiny_core.component import Component
from serotiny_core.errors import ConfigError, DataError, Interrupted, SerotinyError, TrackingError
from serotiny_core.imports import import_object

if TYPE_CHECKING:  # for type checkers; at run time, __getattr__ below
    from serotiny_core.hookspecs import hookimpl

__version__ = "1.1.0"

__all__ = [
    "Component",
    "ConfigError",
    "DataError",
    "INDEX_KEY",
    "Interrupted",
    "SerotinyError",
    "TrackingError",
    "__version__",
    "hookimpl",
    "import_object",
]


def __getattr__(name: str) -> Any:
    """``hookimpl``, pluggy's marker, imported on first use (see above)."""
    if name == "hookimpl":
        from serotiny_core.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
