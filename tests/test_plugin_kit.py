"""The plugin authors' kit: `serotiny init --plugin`, installed as a real distribution."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

PYTEST = str(Path(sys.executable).parent / "pytest")
PLUGIN = "serotiny-cell-shapes"


def scaffold_plugin(where: Path, name: str = PLUGIN) -> Path:
    result = run_cli("init", "--plugin", name, cwd=where)
    assert result.code == 0, result.text
    return where / name


def pip_install(source: Path, site: Path) -> None:
    """Build a wheel of ``source`` and install it into ``site``: a real dist-info with a RECORD."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=300)


@pytest.fixture
def cell_shapes(tmp_path: Path, site: Path) -> Path:
    """The scaffolded plugin's source tree, its wheel installed into ``site``."""
    source = scaffold_plugin(tmp_path)
    pip_install(source, site)
    return source


def test_a_scaffolded_plugin_installs_lists_and_passes_its_own_tests(cell_shapes, site_env, tmp_path):
    listed = run_cli("list-components", cwd=tmp_path, env=site_env)
    assert listed.code == 0, listed.text
    for name in ("CellShapesAutoencoder", "CellShapesFeatures", "CellShapesEpochTimer"):
        assert name in listed.out
    assert "serotiny-cell-shapes" in listed.out
    tests = subprocess.run([PYTEST, "-q", "-p", "no:cacheprovider"], cwd=cell_shapes,
                           env={**os.environ, **site_env}, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout


def test_scaffold_layout_names_the_entry_point_and_ships_the_configs(tmp_path):
    root = scaffold_plugin(tmp_path, "serotiny-3d-shapes")
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points."serotiny.plugins"]\nserotiny_3d_shapes = "serotiny_3d_shapes.serotiny_plugin"' in pyproject
    assert 'serotiny_3d_shapes = ["config/**/*.yaml"]' in pyproject and 'test = ["pytest>=8"]' in pyproject
    configs = sorted(p.relative_to(root / "serotiny_3d_shapes" / "config").as_posix()
                     for p in root.rglob("*.yaml"))
    assert configs == ["data/serotiny_3d_shapes_features.yaml", "model/serotiny_3d_shapes_autoencoder.yaml",
                       "trainer/callbacks/serotiny_3d_shapes_timer.yaml"]
    assert "class Serotiny3dShapesAutoencoder(BaseModel)" in (root / "serotiny_3d_shapes" / "models.py").read_text()


@pytest.mark.parametrize("args, words", [
    (("init",), ["NAME or --plugin NAME"]),
    (("init", "proj", "--plugin", "x"), ["NAME or --plugin NAME"]),
    (("init", "--plugin", "serotiny"), ["shadow", "'serotiny'"]),
])
def test_init_refuses_unclear_or_reserved_names(tmp_path, args, words):
    result = run_cli(*args, cwd=tmp_path)
    assert result.code == 2 and "Traceback" not in result.text
    [line] = result.err.splitlines()
    assert all(word in line for word in words), line
    assert list(tmp_path.iterdir()) == []


def test_init_plugin_never_writes_into_an_existing_folder(tmp_path):
    (tmp_path / PLUGIN).mkdir()
    (tmp_path / PLUGIN / "keep.txt").write_text("mine")
    result = run_cli("init", "--plugin", PLUGIN, cwd=tmp_path)
    assert result.code == 2 and "already exists" in result.err
    assert [p.name for p in (tmp_path / PLUGIN).iterdir()] == ["keep.txt"]
