"""The hooks a serotiny plugin may implement.

A plugin is a module named by an entry point of the group
``serotiny.plugins``; it marks its implementations with :data:`hookimpl`.
"""

from __future__ import annotations

from typing import Any, Iterable

import pluggy

PROJECT_NAME = "serotiny"
ENTRY_POINT_GROUP = "serotiny.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def serotiny_components() -> Iterable[Any]:
    """Return the components this plugin provides.

    Each item is a :class:`serotiny_core.Component` or a dict with the same
    keys (``kind``, ``name``, ``target``, ``aliases``, ``description``).
    Declaring a component must not import its target: serotiny imports it
    only when a config uses it.
    """


@hookspec
def serotiny_config_dirs() -> Iterable[str]:
    """Return Hydra config sources (``pkg://package.sub`` or ``file:///abs/path``).

    Their config groups (``model/``, ``data/``, ``trainer/``,
    ``trainer/callbacks/``, ``mlflow/``) become selectable in every project.
    """
