"""The :class:`Component` record: what a plugin declares, without importing it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

KNOWN_KINDS = ("model", "datamodule", "loader", "callback")


@dataclass(frozen=True)
class Component:
    """One thing a config can name in ``_target_``.

    ``target`` is a dotted import path (``pkg.mod.Attr``; ``pkg.mod:Attr`` is
    accepted and normalised). ``plugin``, ``distribution`` and ``version`` are
    filled in by the plugin manager, not by the plugin.
    """

    kind: str
    name: str
    target: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    plugin: str = field(default="", compare=False)
    distribution: str = field(default="", compare=False)
    version: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for key in ("kind", "name", "target"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"component {key!r} must be a non-empty string, got {value!r}")
        if isinstance(self.aliases, str):
            object.__setattr__(self, "aliases", (self.aliases,))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "target", self.target.replace(":", "."))

    @classmethod
    def coerce(cls, item: Any) -> "Component":
        """Accept a Component or a plain dict with the same keys."""
        if isinstance(item, Component):
            return item
        if isinstance(item, Mapping):
            allowed = {f.name for f in fields(cls)}
            unknown = set(item) - allowed
            if unknown:
                raise ValueError(f"unknown component keys {sorted(unknown)} in {dict(item)!r}")
            return cls(**item)
        raise TypeError(f"expected a Component or a dict, got {type(item).__name__}: {item!r}")

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``serotiny list-components --json``."""
        return {
            "kind": self.kind,
            "name": self.name,
            "target": self.target,
            "aliases": list(self.aliases),
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "description": self.description,
        }
