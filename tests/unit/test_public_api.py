"""The public API: what ``serotiny_core.__all__`` declares, and plugins use nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import serotiny_core

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = [ROOT / "serotiny_plugins", ROOT / "docs" / "examples" / "serotiny-example-plugin"]


def _core_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, what)`` for every import of serotiny_core in ``path``, public or not."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names
                      if a.name.split(".")[0] == "serotiny_core"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "serotiny_core":
            found += [(node.lineno, f"from {node.module} import {a.name}") for a in node.names]
    return found


def _private_uses(path: Path) -> list[str]:
    public = {f"from serotiny_core import {name}" for name in serotiny_core.__all__}
    return [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in _core_imports(path)
            if what not in public]


@pytest.mark.parametrize("source", PLUGIN_SOURCES, ids=lambda p: p.name)
def test_plugins_import_only_the_public_api(source: Path) -> None:
    private = [use for path in sorted(source.rglob("*.py")) for use in _private_uses(path)]
    assert private == []


def test_every_public_name_exists() -> None:
    assert all(hasattr(serotiny_core, name) for name in serotiny_core.__all__)
    assert serotiny_core.INDEX_KEY == "_index"
    assert issubclass(serotiny_core.ConfigError, serotiny_core.SerotinyError)


def test_the_check_catches_internal_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    plugin = tmp_path / "plugin.py"
    plugin.write_text("from serotiny_core import Component\nfrom serotiny_core.errors import DataError\n"
                      "def f():\n    import serotiny_core.targets\n")
    assert _private_uses(plugin) == ["plugin.py:2: from serotiny_core.errors import DataError",
                                     "plugin.py:4: import serotiny_core.targets"]
