"""Imports flow one way: no cycle among the modules of serotiny_core or serotiny_plugins.

Read statically with ``ast``, so an import inside a function counts as much
as one at the top (it runs too, just later); only imports under
``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modules(base: Path) -> dict[str, Path]:
    """Module name -> file, for the package in folder ``base``."""
    return {".".join((base.name, *p.relative_to(base).with_suffix("").parts)).removesuffix(".__init__"): p
            for p in base.rglob("*.py")}


def _imported(tree: ast.AST, module: str) -> set[str]:
    """Every module name an import statement of ``tree`` reaches, TYPE_CHECKING blocks aside."""
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for other in node.orelse:
                found |= _imported(ast.Module(body=[other], type_ignores=[]), module)
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*module.split(".")[:-node.level], *([base] if base else [])])
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
        found |= _imported(node, module)
    return found


def _graph(base: Path) -> dict[str, set[str]]:
    """Which modules of the package in ``base`` each of its modules imports."""
    modules = _modules(base)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target in _imported(ast.parse(path.read_text(encoding="utf-8")), name):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                edges.add(target)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a path that returns to its start), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph[node]):
            found = visit(nxt, path + [node])
            if found:
                return found
        done.add(node)
        return None

    return next((c for c in (visit(n, []) for n in sorted(graph)) if c), None)


@pytest.mark.parametrize("package", ["serotiny_core", "serotiny_plugins"])
def test_no_import_cycle(package: str) -> None:
    cycle = _cycle(_graph(ROOT / package))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_check_sees_imports_in_functions_and_skips_type_checking_ones(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import C\n"
                                  "from . import a\n")
    (package / "c.py").write_text("import pkg.b\n")
    graph = _graph(package)
    assert graph["pkg.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.b"}
    assert _cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
