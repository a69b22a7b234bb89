"""Components by name, alias and ``<plugin>:<name>``, without importing them."""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Iterable

from serotiny_core.component import Component
from serotiny_core.errors import ConfigError


class AmbiguousComponent(ConfigError):
    """Two plugins register the same name for different targets."""


class Registry:
    """Look components up by name or alias; qualify with ``<plugin>:`` on a clash."""

    def __init__(self, components: Iterable[Component]) -> None:
        self._components = list(components)
        self._by_key: dict[str, list[Component]] = defaultdict(list)
        for component in self._components:
            for key in (component.name, *component.aliases):
                self._add(key, component)
                if component.plugin:
                    self._add(f"{component.plugin}:{key}", component)

    def _add(self, key: str, component: Component) -> None:
        if component not in self._by_key[key]:
            self._by_key[key].append(component)

    def components(self, kind: str | None = None) -> list[Component]:
        """Every component (of one kind), sorted by kind then name."""
        chosen = [c for c in self._components if kind is None or c.kind == kind]
        return sorted(chosen, key=lambda c: (c.kind, c.name.lower(), c.plugin))

    def find(self, name: str) -> Component | None:
        """The component registered as ``name``; None when nothing is.

        Raises :class:`AmbiguousComponent` when plugins register ``name`` for
        different targets (the same target twice is no clash).
        """
        found = self._by_key.get(name, [])
        if len({c.target for c in found}) > 1:
            raise AmbiguousComponent(
                f"{name!r} is registered by several plugins: {describe_clash(found)}",
                hint=f"qualify it, e.g. '{found[0].plugin}:{name}'",
            )
        return found[0] if found else None

    def registers_target(self, target: str) -> bool:
        """Whether ``target`` (``pkg.mod.Attr`` or ``pkg.mod:Attr``) is a registered component's.

        A resolved config names its components by import path; a config
        resolved again (test/predict check the run's model after the rest)
        must still count them as registered.
        """
        wanted = target.replace(":", ".")
        return any(c.target.replace(":", ".") == wanted for c in self._components)

    def clashes(self) -> dict[str, list[Component]]:
        """Unqualified names that two or more plugins register for different targets."""
        return {
            key: found for key, found in self._by_key.items()
            if ":" not in key and len({c.target for c in found}) > 1
        }

    def suggest(self, name: str, limit: int = 3) -> list[str]:
        """The registered names closest to ``name``, for 'did you mean' messages."""
        keys = [k for k in self._by_key if ":" not in k]
        close = difflib.get_close_matches(name, keys, n=limit, cutoff=0.6)
        if not close:
            short = {c.name: c.name for c in self._components}
            close = difflib.get_close_matches(name.rsplit(".", 1)[-1], list(short), n=limit, cutoff=0.5)
        return close


def describe_clash(found: list[Component]) -> str:
    """``'a.B' (plugin p1, dist d1), 'c.B' (plugin p2, dist d2)``."""
    return ", ".join(f"{c.target!r} (plugin {c.plugin!r}, {c.distribution or 'no distribution'})"
                     for c in found)
