"""serotiny: discover plugin components, compose Hydra configs, train with Lightning.

The names in ``__all__`` are the public API, what plugins build on: they
keep working across minor versions. Every other module and name of
``serotiny_core`` is internal and may change in any release.

This package stays light to import: it pulls in pluggy, never torch,
Lightning or MLflow, so that ``serotiny list-components`` and ``--help`` are
fast. The heavy modules are imported by the commands that need them.
"""

from __future__ import annotations

from serotiny_core.batch import INDEX_KEY
from serotiny_core.component import Component
from serotiny_core.errors import ConfigError, DataError, Interrupted, SerotinyError, TrackingError
from serotiny_core.hookspecs import hookimpl
from serotiny_core.imports import import_object

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
