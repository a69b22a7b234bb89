"""Shared fixtures: the real CLI (in this process, or a subprocess), temp projects, temp plugins.

Plugins are made real: a module plus a ``.dist-info`` folder whose
``entry_points.txt`` names it, on a temp ``PYTHONPATH`` — exactly what pip
leaves behind, so discovery goes through ``importlib.metadata`` for real.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from serotiny_core.pytest_plugin import run_command
from slurm_cluster import Cluster, ClusterUnavailable, shared, stop_shared

SEROTINY = str(Path(sys.executable).parent / "serotiny")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300,
            subprocess: bool = False) -> Result:
    """Run ``serotiny ARGS`` in ``cwd`` and capture everything it prints, its children's too.

    In this process by default: no interpreter, torch and Hydra to start for
    each command, and the process is left as it was (environment, cwd,
    ``sys.path``, the modules of the project and of a ``PYTHONPATH`` given in
    ``env``, Hydra's state, logging, the plugin cache). ``subprocess=True``
    for what must not share the test's process: signals, DDP, launchers
    that fork jobs (joblib, submitit). ``timeout`` bounds a subprocess only.
    """
    command_env = {"PYTHONUNBUFFERED": "1", **(env or {}), "HYDRA_FULL_ERROR": None,
                   "SEROTINY_DEBUG": None}
    return Result(*run_command(args, cwd, command_env, subprocess=subprocess, timeout=timeout))


def make_plugin(site: Path, dist: str, version: str, entry_name: str, module: str,
                code: str, files: dict[str, str] | None = None) -> None:
    """Write a plugin distribution into ``site``: its package and its dist-info."""
    package_dir = site / module.split(".")[0]
    package_dir.mkdir(parents=True, exist_ok=True)
    (package_dir / "__init__.py").touch()
    (site / (module.replace(".", "/") + ".py")).write_text(textwrap.dedent(code))
    for relative, text in (files or {}).items():
        path = package_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[serotiny.plugins]\n{entry_name} = {module}\n")


def session_root(factory: pytest.TempPathFactory) -> Path:
    """The temp folder every xdist worker of this test session shares (a worker's is below it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """A real single-node SLURM cluster for this host, one for the whole session; or a skip
    that says why it cannot run here (not installed, not root, a daemon's log)."""
    try:
        return shared(session_root(tmp_path_factory))
    except ClusterUnavailable as why:
        pytest.skip(str(why))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One worker more than cores: tests spend much of their time waiting on the processes
    they start (MLflow's, a server, DataLoader workers, SLURM's), and a spare worker fills it."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (a stable sort): the workers start on the long ones and the short ones
    fill the end, instead of one worker running the last long test alone. xdist hands each
    worker the next test as it frees up (``--maxschedchunk 1``): a module-scoped fixture is
    made again by each worker that runs one of its tests, so an expensive one (a SLURM sweep)
    belongs to one test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The xdist controller (or the only process) ends once all workers have: stop SLURM."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        stop_shared(session_root(session.config._tmp_path_factory))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def plugin_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plugin cache folder of this test's own: no test reads or fills the user's."""
    path = tmp_path_factory.mktemp("plugin-cache")
    monkeypatch.setenv("SEROTINY_CACHE_DIR", str(path))
    return path


@pytest.fixture
def site_env(site: Path, plugin_cache: Path) -> dict[str, str]:
    """The environment that puts ``site`` on the path; whole, for tests that pass only it."""
    return {"PYTHONPATH": str(site), "SEROTINY_CACHE_DIR": str(plugin_cache)}


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store whose tables exist, made once per test process.

    MLflow creates a new store's tables through its whole migration history:
    about 1.3 s of CPU in the first tracked command of every project. A copy
    of this store spares each test that cost; ``fresh_project`` keeps it for
    the tests of a new store.
    """
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def init_project(where: Path, store: Path | None = None) -> Path:
    """``serotiny init proj`` in ``where`` (made if need be); with ``store``, a copy of it as
    the project's MLflow store (see ``empty_store``)."""
    where.mkdir(parents=True, exist_ok=True)
    result = run_cli("init", "proj", cwd=where)
    assert result.code == 0, result.text
    if store is not None:
        shutil.copyfile(store, where / "proj" / "mlflow.db")
    return where / "proj"


@pytest.fixture
def fresh_project(tmp_path: Path) -> Path:
    """A project written by ``serotiny init``, as it is: no MLflow store yet."""
    return init_project(tmp_path)


@pytest.fixture
def project(tmp_path: Path, empty_store: Path) -> Path:
    """A project written by ``serotiny init``, its MLflow store's tables made (see ``empty_store``)."""
    return init_project(tmp_path, empty_store)
