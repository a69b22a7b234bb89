"""Registry: names, aliases, ``<plugin>:<name>``, clashes and suggestions, in-process."""

from __future__ import annotations

import pytest

from serotiny_core.component import Component
from serotiny_core.registry import AmbiguousComponent, Registry


def component(name: str, target: str, plugin: str = "p1", kind: str = "model",
              aliases: tuple[str, ...] = ()) -> Component:
    return Component(kind=kind, name=name, target=target, aliases=aliases, plugin=plugin,
                     distribution=f"{plugin}-dist", version="1.0")


def test_finds_by_name_alias_and_qualified_name() -> None:
    vae = component("TabularVAE", "pkg.models.TabularVAE", aliases=("vae",))
    registry = Registry([vae])
    assert registry.find("TabularVAE") is vae
    assert registry.find("vae") is vae
    assert registry.find("p1:vae") is vae
    assert registry.find("p1:TabularVAE") is vae


def test_unknown_name_is_none() -> None:
    assert Registry([component("A", "pkg.A")]).find("B") is None


def test_clash_raises_with_qualified_hint() -> None:
    registry = Registry([component("Net", "a.Net", plugin="alpha"), component("Net", "b.Net", plugin="beta")])
    with pytest.raises(AmbiguousComponent) as raised:
        registry.find("Net")
    assert "'a.Net' (plugin 'alpha', alpha-dist)" in str(raised.value)
    assert "qualify it, e.g. 'alpha:Net'" in str(raised.value)
    assert registry.find("beta:Net").target == "b.Net"
    assert set(registry.clashes()) == {"Net"}


def test_same_target_twice_is_no_clash() -> None:
    registry = Registry([component("Net", "a.Net", plugin="alpha"), component("Net", "a.Net", plugin="beta")])
    assert registry.find("Net").target == "a.Net"
    assert registry.clashes() == {}


def test_components_sorted_by_kind_then_name_and_filtered() -> None:
    registry = Registry([component("zeta", "m.Z"), component("Alpha", "m.A"),
                         component("Stop", "c.S", kind="callback")])
    assert [c.name for c in registry.components()] == ["Stop", "Alpha", "zeta"]
    assert [c.name for c in registry.components("model")] == ["Alpha", "zeta"]


def test_suggests_close_names_then_last_dotted_part() -> None:
    registry = Registry([component("TabularVAE", "pkg.TabularVAE"), component("ImageVAE", "pkg.ImageVAE")])
    assert registry.suggest("TabularVEA")[0] == "TabularVAE"
    assert registry.suggest("serotiny.models.TabularVAE") == ["TabularVAE"]
    assert registry.suggest("completely-different") == []
