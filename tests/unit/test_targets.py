"""Target resolution and argument checks, in-process with hand-made plugin sets."""

from __future__ import annotations

import collections

import pluggy
import pytest
from omegaconf import OmegaConf

from serotiny_core.component import Component
from serotiny_core.errors import ConfigError
from serotiny_core.plugins import BrokenPlugin, Plugins
from serotiny_core.targets import (TargetResolver, check_arguments, did_you_mean, import_object,
                                   target_nodes)


def plugins(*components: Component, broken: tuple[BrokenPlugin, ...] = ()) -> Plugins:
    return Plugins(manager=pluggy.PluginManager("serotiny"), components=list(components),
                   broken=list(broken))


def counter_component(name: str = "Counter", aliases: tuple[str, ...] = ()) -> Component:
    return Component(kind="model", name=name, target="collections.Counter", aliases=aliases,
                     plugin="base", distribution="base-dist", version="1")


def make_point(x: int, y: int = 0, *, label: str = "") -> tuple[int, int, str]:
    return x, y, label


def takes_anything(x: int, **rest: object) -> None:
    """A signature with ``**kwargs``: any key is accepted."""


def test_import_object_dotted_and_colon_paths() -> None:
    assert import_object("collections.OrderedDict") is collections.OrderedDict
    assert import_object("collections:OrderedDict") is collections.OrderedDict
    assert import_object("os.path.join") is __import__("os").path.join


def test_import_object_missing_attribute_and_module() -> None:
    with pytest.raises(ImportError, match="cannot import 'collections.Nope'"):
        import_object("collections.Nope")
    with pytest.raises(ImportError, match="no module named 'no_such_pkg_xyz'"):
        import_object("no_such_pkg_xyz.Thing")


def test_import_object_reports_a_broken_module_s_own_error(tmp_path, monkeypatch) -> None:
    (tmp_path / "half_broken_mod.py").write_text("import dependency_that_is_missing_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as raised:
        import_object("half_broken_mod.Thing")
    assert raised.value.name == "dependency_that_is_missing_xyz"


def test_target_nodes_walks_dicts_and_lists_with_paths() -> None:
    cfg = OmegaConf.create({"_target_": "a.B", "model": {"_target_": "m.M"},
                            "trainer": {"callbacks": [{"_target_": "c.C"}, {"x": 1}]}})
    assert [path for path, _ in target_nodes(cfg)] == ["<root>", "model", "trainer.callbacks[0]"]


def test_resolver_rewrites_registered_names_to_targets() -> None:
    cfg = OmegaConf.create({"model": {"_target_": "tally"}})
    TargetResolver(plugins(counter_component(aliases=("tally",)))).resolve(cfg)
    assert cfg.model._target_ == "collections.Counter"


def test_resolver_unknown_name_suggests_the_closest() -> None:
    cfg = OmegaConf.create({"model": {"_target_": "Countr"}})
    with pytest.raises(ConfigError) as raised:
        TargetResolver(plugins(counter_component())).resolve(cfg)
    assert "unknown target 'Countr'" in raised.value.message
    assert raised.value.hint.startswith("did you mean 'Counter'?")


def test_resolver_names_a_broken_plugin_that_would_provide_the_target() -> None:
    broken = BrokenPlugin("gone", "gone-dist", "2", "ImportError: boom", module="gone_pkg.plugin")
    cfg = OmegaConf.create({"model": {"_target_": "gone_pkg.models.Net"}})
    with pytest.raises(ConfigError, match="comes from plugin 'gone' \\(gone-dist\\), which failed to load"):
        TargetResolver(plugins(broken=(broken,))).resolve(cfg)


def test_strict_refuses_paths_off_the_allow_list_and_accepts_allowed_ones() -> None:
    with pytest.raises(ConfigError, match="--strict refuses 'collections.Counter'"):
        TargetResolver(plugins(), strict=True).resolve(OmegaConf.create({"m": {"_target_": "collections.Counter"}}))
    cfg = OmegaConf.create({"m": {"_target_": "collections.Counter"}})
    TargetResolver(plugins(), strict=True, allow=("collections.*",)).resolve(cfg)
    assert cfg.m._target_ == "collections.Counter"


def test_target_must_be_a_non_empty_string() -> None:
    with pytest.raises(ConfigError, match="model._target_ must be a name or import path, got 3"):
        TargetResolver(plugins()).resolve(OmegaConf.create({"model": {"_target_": 3}}))


def test_check_arguments_unknown_key_says_did_you_mean() -> None:
    node = OmegaConf.create({"_target_": "x", "x": 1, "lable": "a"})
    with pytest.raises(ConfigError) as raised:
        check_arguments("model", node, make_point, "make_point")
    assert raised.value.message == "model: make_point has no argument 'lable'"
    assert raised.value.hint == "did you mean 'label'? valid arguments: x, y, label"


def test_check_arguments_missing_required_argument() -> None:
    with pytest.raises(ConfigError, match="model: make_point needs 'x'"):
        check_arguments("model", OmegaConf.create({"_target_": "x", "y": 2}), make_point, "make_point")
    with pytest.raises(ConfigError, match="needs 'x'"):
        check_arguments("model", OmegaConf.create({"_target_": "x", "x": "???"}), make_point, "make_point")


def test_check_arguments_accepts_partial_kwargs_and_no_signature() -> None:
    check_arguments("m", OmegaConf.create({"_target_": "x", "_partial_": True, "y": 1}), make_point, "p")
    check_arguments("m", OmegaConf.create({"_target_": "x", "x": 1, "anything": 2}), takes_anything, "t")
    check_arguments("m", OmegaConf.create({"_target_": "x", "whatever": 1}), min, "min")


def test_did_you_mean() -> None:
    assert did_you_mean("latent_dimm", ["latent_dim", "hidden"]) == "did you mean 'latent_dim'? "
    assert did_you_mean("zzz", ["latent_dim"]) == ""
