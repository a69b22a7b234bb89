"""The plugin authors' kit: `serotiny init --plugin`, installed as a real distribution."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_plugin, run_cli

PYTEST = str(Path(sys.executable).parent / "pytest")
PLUGIN = "serotiny-cell-shapes"
EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "serotiny-example-plugin"
CONFIG = "serotiny_cell_shapes/config"


def scaffold_plugin(where: Path, name: str = PLUGIN) -> Path:
    result = run_cli("init", "--plugin", name, cwd=where)
    assert result.code == 0, result.text
    return where / name


def pip_install(source: Path, site: Path) -> None:
    """Build a wheel of ``source`` and install it into ``site``: a real dist-info with a RECORD.

    pip records ``source`` as where the distribution came from (direct_url.json).
    """
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--no-cache-dir", "--disable-pip-version-check",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=300)


def problems(result) -> list[str]:
    """The problem lines of a check-plugin report (not its notes, not its summary)."""
    return [l for l in result.out.splitlines() if not l.startswith(("note:", "check-plugin "))]


@pytest.fixture
def cell_shapes(tmp_path: Path, site: Path) -> Path:
    """The scaffolded plugin's source tree, its wheel installed into ``site``."""
    source = scaffold_plugin(tmp_path)
    pip_install(source, site)
    return source


@pytest.mark.slow
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


def test_check_plugin_passes_on_a_scaffolded_plugin_and_on_the_example(cell_shapes, site, site_env, tmp_path):
    example = tmp_path / "example"  # pip builds in the source folder: build a copy, not the docs
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    pip_install(example, site)
    checked = run_cli("check-plugin", "cell_shapes", cwd=tmp_path, env=site_env)
    assert checked.code == 0, checked.text
    assert problems(checked) == [] and "no problems" in checked.out
    report = json.loads(run_cli("check-plugin", "serotiny-example-plugin", "--json", cwd=tmp_path,
                                env=site_env).out)
    assert report["ok"] and report["problems"] == [] and report["version"] == "0.1.0"
    assert "serotiny_example/config/model/linear_ae.yaml: one batch (fast_dev_run) trains" in report["checked"]
    assert ("serotiny_example/config/data/scaled_features.yaml: data.loaders.x: rows and load_frame agree"
            in report["checked"])
    assert "2 YAML file(s) are in serotiny-example-plugin's RECORD" in report["checked"]


def _misspell_target(source: Path) -> None:
    model = source / CONFIG / "model" / "cell_shapes_autoencoder.yaml"
    model.write_text(model.read_text().replace("_target_: CellShapesAutoencoder", "_target_: CellShapesAutoencodr"))


def _disagreeing_loader(source: Path) -> None:
    loaders = source / "serotiny_cell_shapes" / "loaders.py"
    text = loaders.read_text()
    head, _, tail = text.rpartition("return (values - self.center) / self.scale")
    loaders.write_text(head + "return 2 * (values - self.center) / self.scale" + tail)


def _yaml_left_out(source: Path) -> None:
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        '["config/**/*.yaml"]', '["config/model/*.yaml", "config/data/*.yaml"]'))


@pytest.mark.parametrize("breaks, file, key, words", [
    (_misspell_target, "model/cell_shapes_autoencoder.yaml", "model._target_",
     ["'CellShapesAutoencodr'", "did you mean 'CellShapesAutoencoder'"]),
    (_disagreeing_loader, "data/cell_shapes_features.yaml", "data.loaders.x",
     ["row 0", "load_frame gives"]),
    (_yaml_left_out, "trainer/callbacks/cell_shapes_timer.yaml", "package-data",
     ["not in the installed distribution serotiny-cell-shapes"]),
], ids=["missing-target", "loader-row-vs-frame", "yaml-not-in-wheel"])
def test_check_plugin_names_the_file_and_key_of_a_broken_plugin(tmp_path, site, site_env, breaks,
                                                                 file, key, words):
    source = scaffold_plugin(tmp_path)
    breaks(source)
    pip_install(source, site)
    result = run_cli("check-plugin", PLUGIN, cwd=tmp_path, env=site_env)
    assert result.code == 1, result.text
    [line] = problems(result)
    assert line.startswith(f"{CONFIG}/{file}: {key}: "), line
    assert all(word in line for word in words), line


def test_check_plugin_of_an_unknown_name_lists_the_installed_ones(tmp_path):
    result = run_cli("check-plugin", "nope", cwd=tmp_path)
    assert result.code == 2 and "Traceback" not in result.text
    [line] = result.err.splitlines()
    assert "'nope'" in line and "installed plugins: " in line and "serotiny" in line


@pytest.mark.parametrize("relative", ["serotiny_example/serotiny_plugin.py", "serotiny_example/models.py",
                                      "serotiny_example/loaders.py", "serotiny_example/config/model/linear_ae.yaml",
                                      "serotiny_example/config/data/scaled_features.yaml"])
def test_the_plugin_guide_shows_the_example_code_as_it_is(relative):
    guide = (EXAMPLE.parent.parent / "plugins.md").read_text()
    assert (EXAMPLE / relative).read_text() in guide


KINDS_PLUGIN = '''
import pytorch_lightning as pl
from serotiny_core import Component, hookimpl


class Model(pl.LightningModule):
    pass


class NotAModel:
    pass


class NotACallback:
    pass


@hookimpl
def serotiny_components():
    return [Component(kind="model", name="Good", target="kinds.plugin.Model"),
            Component(kind="model", name="Bad", target="kinds.plugin.NotAModel"),
            Component(kind="callback", name="Quiet", target="kinds.plugin.NotACallback"),
            Component(kind="loader", name="Gone", target="kinds.plugin.Missing")]
'''


def test_check_plugin_checks_each_component_is_the_kind_it_claims(site, site_env, tmp_path):
    make_plugin(site, "serotiny-kinds", "0.1", "kinds", "kinds.plugin", KINDS_PLUGIN)
    result = run_cli("check-plugin", "kinds", cwd=tmp_path, env=site_env)
    assert result.code == 1, result.text
    hooks = str(site / "kinds" / "plugin.py")
    assert problems(result) == [
        f"{hooks}: model 'Bad': kinds.plugin.NotAModel is not a LightningModule "
        "(of pytorch_lightning or lightning.pytorch)",
        f"{hooks}: callback 'Quiet': kinds.plugin.NotACallback is not a Callback "
        "(of pytorch_lightning or lightning.pytorch)",
        f"{hooks}: loader 'Gone': target 'kinds.plugin.Missing' does not import: "
        "ImportError: cannot import 'kinds.plugin.Missing'"]
    assert "note: serotiny-kinds has no RECORD" in result.out
