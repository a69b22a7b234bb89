"""Which config group option each registered component is, read from declarations only.

Every component of a kind that has a config group is an option of that group
(``model=TabularVAE``, ``data=ManifestDatamodule``,
``trainer/callbacks=EarlyStopping``) with no YAML file behind it. This module
only names the options: it never imports a component, so listings stay
free of torch. :mod:`serotiny_core.component_source` builds the config of an
option when Hydra asks for it.

Names offered (in listings, ``--help`` and completion): the registered name
and every alias without a dot; where two plugins register a name for
different targets, ``<plugin>:<name>`` for each instead. Also accepted, but
not offered: dotted aliases (``serotiny.models.TabularVAE``), which spell an
import path and are kept so old configs' names still select the component,
and ``<plugin>:<name>`` for names that do not clash.
"""

from __future__ import annotations

from serotiny_core.component import Component
from serotiny_core.registry import Registry

# The config group of each kind; kinds not named here (loaders, ...) have none.
GROUPS = {"model": "model", "datamodule": "data", "callback": "trainer/callbacks"}


def group_of(component: Component) -> str | None:
    """The config group whose option ``component`` is, or None."""
    return GROUPS.get(component.kind)


def _spellings(component: Component) -> list[str]:
    names = [component.name, *component.aliases]
    qualified = [f"{component.plugin}:{name}" for name in names] if component.plugin else []
    return names + qualified


def _offered(name: str, clashes: dict[str, list[Component]]) -> bool:
    """Dot-free names; ``<plugin>:<name>`` only where the bare name clashes."""
    if "." in name:
        return False
    return name.split(":", 1)[1] in clashes if ":" in name else name not in clashes


class ComponentOptions:
    """The generated options of every group: what each name selects, and which are offered."""

    def __init__(self, registry: Registry) -> None:
        self._clashes = clashes = registry.clashes()
        self._chosen: dict[tuple[str, str], Component] = {}
        self._offered: dict[str, set[str]] = {group: set() for group in GROUPS.values()}
        for component in registry.components():
            group = group_of(component)
            if group is None:
                continue
            for name in _spellings(component):
                if name in clashes:
                    continue
                self._chosen.setdefault((group, name), component)
                if _offered(name, clashes):
                    self._offered[group].add(name)

    def find(self, group: str, name: str) -> Component | None:
        """The component option ``name`` of ``group`` selects, or None."""
        return self._chosen.get((group, name))

    def offered(self, group: str) -> list[str]:
        """The option names ``group`` lists, sorted."""
        return sorted(self._offered.get(group, ()))

    def name(self, component: Component) -> str:
        """The one name that selects ``component`` everywhere: qualified only on a clash."""
        return f"{component.plugin}:{component.name}" if component.name in self._clashes else component.name

    def option(self, component: Component) -> str:
        """``group=name`` as a user types it for ``component``; "" for kinds without a group."""
        group = group_of(component)
        return f"{group}={self.name(component)}" if group is not None else ""
