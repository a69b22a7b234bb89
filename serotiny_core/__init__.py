"""serotiny: discover plugin components, compose Hydra configs, train with Lightning.

This package stays light to import: it pulls in pluggy, never torch,
Lightning or MLflow, so that ``serotiny list-components`` and ``--help`` are
fast. The heavy modules are imported by the commands that need them.
"""

from __future__ import annotations

from serotiny_core.component import Component
from serotiny_core.hookspecs import hookimpl

__version__ = "1.1.0"

__all__ = ["Component", "hookimpl", "__version__"]
