"""Config group options generated from registered components."""

from __future__ import annotations

from serotiny_core.component import Component
from serotiny_core.component_options import ComponentOptions
from serotiny_core.registry import Registry


def component(kind: str, name: str, target: str, plugin: str, aliases: tuple[str, ...] = ()) -> Component:
    return Component(kind=kind, name=name, target=target, aliases=aliases, plugin=plugin)


def test_names_and_dot_free_aliases_are_offered_dotted_ones_only_accepted() -> None:
    vae = component("model", "TabularVAE", "pkg.TabularVAE", "base", aliases=("vae", "serotiny.models.TabularVAE"))
    options = ComponentOptions(Registry([vae, component("loader", "Load", "pkg.Load", "base")]))
    assert options.offered("model") == ["TabularVAE", "vae"]
    assert options.find("model", "serotiny.models.TabularVAE") is vae
    assert options.find("model", "base:vae") is vae
    assert options.option(vae) == "model=TabularVAE"
    assert options.offered("loader") == []


def test_clashing_names_are_offered_qualified_only() -> None:
    one = component("callback", "Stop", "a.Stop", "alpha")
    two = component("callback", "Stop", "b.Stop", "beta")
    options = ComponentOptions(Registry([one, two]))
    assert options.offered("trainer/callbacks") == ["alpha:Stop", "beta:Stop"]
    assert options.find("trainer/callbacks", "Stop") is None
    assert options.find("trainer/callbacks", "beta:Stop") is two
    assert options.option(one) == "trainer/callbacks=alpha:Stop"
