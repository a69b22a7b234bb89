"""Plugin discovery with entry points handed in: no install, no subprocess."""

from __future__ import annotations

import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from serotiny_core.plugins import DISABLE_ENV, discover, ordered_config_dirs

GOOD = """
    from serotiny_core import Component, hookimpl

    @hookimpl
    def serotiny_components():
        return [Component(kind="model", name="{name}", target="collections.Counter"),
                {{"kind": "callback", "name": "{name}Stop", "target": "collections.OrderedDict"}}]

    @hookimpl
    def serotiny_config_dirs():
        return ["pkg://{module}/config"]
"""


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write plugin modules into ``tmp_path`` (on sys.path); forget them afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(module: str, code: str) -> metadata.EntryPoint:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(code))
        written.append(module)
        return metadata.EntryPoint(name=module.removeprefix("unit_plugin_"), value=module,
                                   group="serotiny.plugins")

    yield write
    for module in written:
        sys.modules.pop(module, None)


def test_components_and_config_dirs_get_their_plugin(modules) -> None:
    ep = modules("unit_plugin_alpha", GOOD.format(name="Alpha", module="unit_plugin_alpha"))
    found = discover(lambda: [ep])
    assert [p.name for p in found.loaded] == ["alpha"]
    assert [(c.kind, c.name, c.plugin) for c in found.components] == [
        ("model", "Alpha", "alpha"), ("callback", "AlphaStop", "alpha")]
    assert ordered_config_dirs(found) == [("alpha", "pkg://unit_plugin_alpha/config")]


def test_a_plugin_that_fails_to_import_is_recorded_and_skipped(modules) -> None:
    good = modules("unit_plugin_good", GOOD.format(name="Good", module="unit_plugin_good"))
    bad = modules("unit_plugin_bad", "import missing_dependency_of_bad_xyz\n")
    found = discover(lambda: [bad, good])
    assert [p.name for p in found.loaded] == ["good"]
    assert [b.name for b in found.broken] == ["bad"]
    assert "cannot load 'unit_plugin_bad': ModuleNotFoundError" in found.broken[0].error
    assert "missing_dependency_of_bad_xyz" in found.broken[0].traceback


def test_a_hook_that_raises_breaks_only_its_plugin(modules) -> None:
    raising = modules("unit_plugin_raising", """
        from serotiny_core import hookimpl

        @hookimpl
        def serotiny_components():
            raise RuntimeError("no components today")
    """)
    found = discover(lambda: [raising])
    assert found.loaded == [] and found.components == []
    assert found.broken[0].error == "serotiny_components() raised RuntimeError: no components today"


def test_a_bad_component_declaration_is_recorded(modules) -> None:
    ep = modules("unit_plugin_typo", """
        from serotiny_core import hookimpl

        @hookimpl
        def serotiny_components():
            return [{"kind": "model", "name": "X", "targt": "a.B"}]
    """)
    found = discover(lambda: [ep])
    assert "serotiny_components() returned ValueError: unknown component keys ['targt']" in found.broken[0].error


def test_disabled_and_duplicate_plugin_names(modules, monkeypatch) -> None:
    first = modules("unit_plugin_dup", GOOD.format(name="Dup", module="unit_plugin_dup"))
    second = metadata.EntryPoint(name="dup", value="unit_plugin_dup", group="serotiny.plugins")
    found = discover(lambda: [first, second])
    assert "another distribution already registers a plugin named 'dup'" in found.broken[0].error
    monkeypatch.setenv(DISABLE_ENV, "dup, other")
    found = discover(lambda: [first])
    assert found.disabled == ["dup"] and found.loaded == [] and found.components == []
