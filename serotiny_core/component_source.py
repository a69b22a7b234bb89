"""A Hydra config source that serves every registered component as a group option.

``serotiny train model=TabularVAE model.x_dim=100`` needs no
``model/TabularVAE.yaml``: this source answers for it with a config built
from the constructor's signature, the one ``serotiny show-component``
prints (defaults filled in, required arguments ``???``). It sits last on the
search path, so a project's or a plugin's YAML file of the same name wins.

Listing options reads only what plugins declared; a component is imported
when Hydra loads its option, and only then.
"""

from __future__ import annotations

from typing import ClassVar

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigResult, ConfigSource
from omegaconf import OmegaConf

from serotiny_core.component_options import GROUPS, ComponentOptions
from serotiny_core.errors import ConfigError, one_line
from serotiny_core.plugins import Plugins
from serotiny_core.registry import Registry

SCHEME = "serotiny-components"
PROVIDER = "serotiny-components"
# Groups whose generated options are lists of specs, as trainer/callbacks/*.yaml files are.
LIST_GROUPS = frozenset({GROUPS["callback"]})


def _split(config_path: str) -> tuple[str, str]:
    """``"model/TabularVAE.yaml"`` -> ``("model", "TabularVAE")``."""
    group, _, name = config_path.strip("/").removesuffix(".yaml").rpartition("/")
    return group, name


def _subgroups(parent: str) -> set[str]:
    """The next level of group names under ``parent`` ("" is the root)."""
    prefix = f"{parent}/" if parent else ""
    return {group[len(prefix):].split("/")[0] for group in GROUPS.values() if group.startswith(prefix)}


class ComponentConfigSource(ConfigSource):
    """``serotiny-components://``: ``<group>/<registered name>`` for every component with a group."""

    current: ClassVar[ComponentOptions | None] = None  # set by install()
    options: ComponentOptions | None

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider, path)
        # A copy on the instance travels with Hydra's config loader when a
        # launcher (joblib) composes jobs in other processes.
        self.options = self.current

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def available(self) -> bool:
        return self.options is not None

    def is_group(self, config_path: str) -> bool:
        path = config_path.strip("/")
        return self.available() and (path in GROUPS.values() or bool(_subgroups(path)))

    def is_config(self, config_path: str) -> bool:
        return self.options is not None and self.options.find(*_split(config_path)) is not None

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if self.options is None:
            return []
        path = config_path.strip("/")
        found: set[str] = set()
        if results_filter in (None, ObjectType.GROUP):
            found |= _subgroups(path)
        if results_filter in (None, ObjectType.CONFIG):
            found |= set(self.options.offered(path))
        return sorted(found)

    def load_config(self, config_path: str) -> ConfigResult:
        from serotiny_core.listing import skeleton
        from serotiny_core.imports import import_object

        group, name = _split(config_path)
        component = self.options.find(group, name) if self.options is not None else None
        assert component is not None, config_path  # Hydra loads only what is_config() found
        try:
            obj = import_object(component.target)
        except Exception as error:
            raise ConfigError(
                f"{group}={name}: plugin {component.plugin!r} registers it as {component.target!r}, "
                f"which fails to import: {one_line(error)}",
                hint=f"reinstall or fix {component.distribution or component.plugin}") from None
        node = OmegaConf.create(skeleton(self.options.name(component), obj))
        config = OmegaConf.create([node]) if group in LIST_GROUPS else node
        return ConfigResult(provider=self.provider, path=self.full_path(), config=config,
                            header={"package": None})


def install(plugins: Plugins) -> tuple[str, str]:
    """Register the source with Hydra for ``plugins``' components; its (provider, path) to append."""
    from hydra.core.plugins import Plugins as HydraPlugins

    ComponentConfigSource.current = ComponentOptions(Registry(plugins.components))
    HydraPlugins.instance().register(ComponentConfigSource)
    return PROVIDER, f"{SCHEME}://"
