"""The documentation: its example plugin works as the docs say, and the site builds clean.

The example plugin (``docs/examples/serotiny-example-plugin``) is installed
into a temp folder with ``pip install --target`` (or, where pip cannot build
it offline, written there by hand as pip would leave it: the package and a
``.dist-info`` folder with ``METADATA`` and ``entry_points.txt``), which goes
on ``PYTHONPATH``; nothing is installed into the environment running the tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from projects import SEED_CALLBACKS, SEED_DATA, SEED_MODEL, store_runs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "serotiny-example-plugin"
PAGES = ("index", "getting-started", "projects", "plugins", "mlflow", "scaling", "troubleshooting",
         "components", "cli", "api")


def example_metadata() -> tuple[str, str, dict[str, str]]:
    """Name, version and ``serotiny.plugins`` entry points, from the example's pyproject.toml."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    return project["name"], project["version"], project["entry-points"]["serotiny.plugins"]


def write_dist_info(site: Path) -> None:
    """What pip leaves behind, by hand: the package and its dist-info."""
    name, version, entry_points = example_metadata()
    for package in (p for p in EXAMPLE.iterdir() if (p / "__init__.py").is_file()):
        shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[serotiny.plugins]\n{lines}")


@pytest.fixture
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed example plugin, for PYTHONPATH."""
    work = tmp_path_factory.mktemp("example")
    source = work / "source"  # pip builds in the source folder: build a copy, not the docs
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    site = work / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                          "--no-build-isolation", "--no-cache-dir", "--disable-pip-version-check",
                          "--target", str(site), str(source)],
                         capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:  # no pip or no setuptools here: do what pip would have done
        shutil.rmtree(site, ignore_errors=True)
        site.mkdir()
        write_dist_info(site)
    return site


def plugin_env(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(site)}


def test_example_ships_its_configs_as_package_data():
    """Every YAML file of the config folder matches the package-data globs, so wheels carry it."""
    data = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, patterns in data.items():
        files = {p for pattern in patterns for p in (EXAMPLE / package).glob(pattern)}
        assert set((EXAMPLE / package).rglob("*.yaml")) <= files


@pytest.mark.slow
def test_example_plugin_is_listed_trains_and_passes_its_own_tests(project, example_site, tmp_path):
    env = plugin_env(example_site)
    name, version, entry_points = example_metadata()
    result = run_cli("list-components", "--json", cwd=tmp_path, env=env)
    assert result.code == 0, result.text
    listing = json.loads(result.out)
    assert listing["broken"] == []
    ours = {c["name"]: c for c in listing["components"] if c["distribution"] == name}
    assert ours["LinearAutoencoder"] == {
        "kind": "model", "name": "LinearAutoencoder",
        "target": "serotiny_example.models.LinearAutoencoder",
        "aliases": ["example.LinearAutoencoder"], "plugin": next(iter(entry_points)),
        "distribution": name, "version": version,
        "description": "A linear autoencoder on a feature vector", "option": "model=LinearAutoencoder"}
    assert ours["LoadScaledColumns"]["kind"] == "loader"
    assert ours["LoadScaledColumns"]["target"] == "serotiny_example.loaders.LoadScaledColumns"
    assert "TabularVAE" in {c["name"] for c in listing["components"]}
    # The example's own test suite, as its author runs it, beside the training below.
    own_tests = tmp_path / "example-tests"
    shutil.copytree(EXAMPLE / "tests", own_tests)
    full_env = {**os.environ, **env}
    for inherited in ("HYDRA_FULL_ERROR", "SEROTINY_DEBUG"):
        full_env.pop(inherited, None)
    pytest_run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--rootdir", str(own_tests), "-o", "addopts=", str(own_tests)],
        cwd=own_tests, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        trained = run_cli("train", "model=linear_ae", "data=scaled_features", "trainer.max_epochs=1",
                          "mlflow.run_name=example", cwd=project, env=env)
        output, _ = pytest_run.communicate(timeout=300)
    finally:
        if pytest_run.poll() is None:
            pytest_run.kill()
    assert trained.code == 0, trained.text
    [run] = store_runs(project, project.name, count=1)
    assert run.info.run_name == "example" and run.info.status == "FINISHED"
    assert run.data.params["model/_target_"] == "serotiny_example.models.LinearAutoencoder"
    assert run.data.params["data/loaders/x/_target_"] == "serotiny_example.loaders.LoadScaledColumns"
    assert "val_loss" in run.data.metrics
    assert pytest_run.returncode == 0, output
    assert re.search(r"\b4 passed\b", output), output


def yaml_blocks(page: str) -> list[str]:
    text = (DOCS / f"{page}.md").read_text()
    return [block for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]


def test_projects_page_shows_the_tested_seed_examples_verbatim():
    """tests/projects.py trains these exact texts (test_seed_project_trains_verbatim)."""
    blocks = yaml_blocks("projects")
    for tested in (SEED_MODEL, SEED_DATA, SEED_CALLBACKS):
        assert tested in blocks


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert build.returncode == 0, build.stdout + build.stderr
    for page in PAGES:
        assert (out / f"{page}.html").is_file(), page
    from serotiny_core.plugins import BUILTIN_DISTRIBUTION, get_plugins

    components = (DOCS / "_generated" / "components.md").read_text()
    builtins = [c for c in get_plugins().components if c.distribution == BUILTIN_DISTRIBUTION]
    assert builtins
    for component in builtins:
        assert f"### {component.name}\n" in components, component.name
    cli = (DOCS / "_generated" / "cli.md").read_text()
    for command in ("train", "test", "predict", "list-components", "show-component", "init"):
        assert f"usage: serotiny {command}" in cli, command
    shown = re.sub(r"<[^>]+>", "", (out / "components.html").read_text())
    assert "_target_: TabularVAE" in shown and "x_dim: ???" in shown
