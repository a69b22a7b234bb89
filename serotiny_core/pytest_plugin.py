"""pytest fixtures for serotiny projects and plugins, registered with pytest by installing serotiny.

- ``serotiny_project``: a project as ``serotiny init`` writes it, in a temp
  folder, with a synthetic manifest whose shape the test chooses (indirect
  parametrisation, or the ``serotiny_manifest`` marker).
- ``run_serotiny``: runs the CLI (in this process by default, or in a
  subprocess) and returns its exit code, output and MLflow run ids.
- ``mlflow_runs``: the project's MLflow runs, with metrics, params, tags and
  artifacts, read from its SQLite store.

Importing this module is cheap: pytest loads it in every session of an
environment where serotiny is installed, so serotiny itself is imported only
when a fixture is used.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

MARKER = "serotiny_manifest"
# The fixtures' own defaults: small and quick, like a unit test should be.
DEFAULT_SHAPE = {"rows": 60, "features": 4, "splits": ("train", "val", "test")}
FAST_TRAINER = {"max_epochs": 1, "log_every_n_steps": 1}
PROJECT_NAME = "proj"


@dataclass(frozen=True)
class ManifestShape:
    """The synthetic manifest's shape: rows, feature columns ``feature_0..``, split names."""

    rows: int = DEFAULT_SHAPE["rows"]
    features: int = DEFAULT_SHAPE["features"]
    splits: tuple[str, ...] = DEFAULT_SHAPE["splits"]
    seed: int = 0


@dataclass(frozen=True)
class SerotinyProject:
    """A scaffolded project: its root, package, config folder and manifest."""

    root: Path
    package: str
    shape: ManifestShape

    @property
    def config_dir(self) -> Path:
        return self.root / self.package / "config"

    @property
    def manifest(self) -> Path:
        return self.root / "data" / "manifest.csv"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root}/mlflow.db"

    def write_config(self, relative: str, text: str) -> Path:
        """Write ``config/<relative>`` (e.g. ``model/mine.yaml``) and return its path."""
        path = self.config_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path


@dataclass
class SerotinyResult:
    """What one ``serotiny`` command did."""

    code: int
    out: str
    err: str
    run_ids: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def run_id(self) -> str | None:
        """The MLflow run of a single job (train/test/predict); None when there was none."""
        return self.run_ids[-1] if self.run_ids else None


@dataclass
class RunRecord:
    """One MLflow run as a test asserts on it."""

    run_id: str
    name: str
    experiment: str
    status: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    artifacts: list[str]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(rows=60, features=4, splits=('train', 'val', 'test'), seed=0): "
                   "the shape of the serotiny_project fixture's synthetic manifest")


def _shape(request: pytest.FixtureRequest) -> ManifestShape:
    """From indirect parametrisation (a dict or a ManifestShape), else the marker, else defaults."""
    chosen = getattr(request, "param", None)
    if isinstance(chosen, ManifestShape):
        return chosen
    if chosen is None:
        marker = request.node.get_closest_marker(MARKER)
        chosen = dict(marker.kwargs) if marker is not None else {}
    values = {**DEFAULT_SHAPE, **chosen}
    return ManifestShape(int(values["rows"]), int(values["features"]), tuple(values["splits"]),
                         int(values.get("seed", 0)))


def _set_keys(path: Path, values: dict[str, Any]) -> None:
    """Set top-level ``key: value`` lines of a scaffolded YAML file, keeping its comments."""
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        line = f"{key}: {value}"
        text, found = re.subn(rf"(?m)^{key}:.*$", line, text)
        if not found:
            text += f"{line}\n"
    path.write_text(text, encoding="utf-8")


def make_project(where: Path, shape: ManifestShape, name: str = PROJECT_NAME) -> SerotinyProject:
    """``serotiny init NAME`` in ``where``, then a manifest of ``shape`` and a one-epoch trainer."""
    from serotiny_core.scaffold import init_project, package_name, write_manifest

    with contextlib.redirect_stdout(io.StringIO()):
        init_project(name, where=where)
    project = SerotinyProject(where / name, package_name(name), shape)
    write_manifest(project.manifest, seed=shape.seed, rows=shape.rows,
                   features=shape.features, splits=shape.splits)
    _set_keys(project.config_dir / "model" / "default.yaml", {"x_dim": shape.features})
    _set_keys(project.config_dir / "trainer" / "default.yaml", FAST_TRAINER)
    return project


@pytest.fixture
def serotiny_project(request: pytest.FixtureRequest, tmp_path: Path) -> SerotinyProject:
    """A project written by ``serotiny init`` with a synthetic manifest and a one-epoch trainer.

    Choose the manifest with ``@pytest.mark.serotiny_manifest(rows=..,
    features=.., splits=(..))`` or ``@pytest.mark.parametrize("serotiny_project",
    [{"features": 8}], indirect=True)``; the model's ``x_dim`` follows.
    """
    return make_project(tmp_path, _shape(request))


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                   if isinstance(lg, logging.Logger))]


@contextlib.contextmanager
def _restored_logging() -> Iterator[None]:
    """Hydra configures logging for each run (a file handler in the job's folder among it):
    its handlers must not outlive the run, nor keep their files open."""
    saved = {id(lg): (lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in _loggers()}
    try:
        yield
    finally:
        for lg in _loggers():
            if id(lg) not in saved:  # made by a library the run imported, which set it up once
                _close_added(lg, [])  # (SQLAlchemy sets its own to WARNING at import): keep that
                continue
            level, handlers, propagate, disabled = saved[id(lg)]
            _close_added(lg, handlers)
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled


def _close_added(lg: logging.Logger, kept: list[logging.Handler]) -> None:
    for handler in set(lg.handlers) - set(kept):
        handler.close()
    lg.handlers[:] = kept


def _forget_modules_under(roots: list[Path], before: set[str]) -> None:
    """Packages the run imported from the project or a plugin site are not the next run's.

    Only packages new to the process go (a package imported before keeps the
    submodules the run added), and never an installed one (the environment
    may live inside the command's folder): serotiny's own and its
    dependencies must stay one set of classes.
    """
    installed = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    for name in set(sys.modules) - before:
        location = getattr(sys.modules[name], "__file__", None) or ""
        if name.partition(".")[0] in before or not location:
            continue
        path = Path(location).resolve()
        if any(path.is_relative_to(root) for root in roots) and not any(
                path.is_relative_to(prefix) for prefix in installed):
            del sys.modules[name]


def _reset_serotiny() -> None:
    """Caches that hold what a run found: the plugins, and Hydra's global state."""
    import importlib

    from hydra.core.global_hydra import GlobalHydra

    from serotiny_core.hydra_app import SerotinySearchPath
    from serotiny_core.plugins import get_plugins

    get_plugins.cache_clear()
    importlib.invalidate_caches()
    GlobalHydra.instance().clear()
    SerotinySearchPath.sources = []


# The command's environment on top of this process's; None unsets a variable.
Env = dict[str, str | None]


def _apply(env: Env) -> None:
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _python_path(env: Env) -> list[str]:
    """A ``PYTHONPATH`` given for the command: a fresh interpreter would put it on ``sys.path``."""
    return [entry for entry in (env.get("PYTHONPATH") or "").split(os.pathsep) if entry]


@contextlib.contextmanager
def _isolated(cwd: Path, env: Env) -> Iterator[None]:
    """The process as it was, after the command: environment, cwd, sys.path, modules, logging."""
    saved_env, saved_cwd, saved_path = dict(os.environ), os.getcwd(), list(sys.path)
    modules = set(sys.modules)
    _apply(env)
    sys.path[:0] = [entry for entry in _python_path(env) if entry not in sys.path]
    os.chdir(cwd)
    _reset_serotiny()
    try:
        with _restored_logging():
            yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        added = [Path(entry).resolve() for entry in sys.path if entry and entry not in saved_path]
        sys.path[:] = saved_path
        _reset_serotiny()
        _forget_modules_under([cwd.resolve(), *added], modules)


# The warning filters of a fresh interpreter: pytest loads this module before it
# records warnings for a test.
_INTERPRETER_FILTERS = list(warnings.filters)


def _print_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   file: Any = None, line: str | None = None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def _interpreter_warnings() -> Iterator[None]:
    """Warnings reach the command's stderr as in its own interpreter, once per place,
    not pytest's record: a test of what a command prints sees them."""
    with warnings.catch_warnings():
        warnings.resetwarnings()  # also forgets which warnings were shown already
        warnings.filters.extend(_INTERPRETER_FILTERS)
        warnings.showwarning = _print_warning
        yield


@contextlib.contextmanager
def _captured() -> Iterator[list[str]]:
    """What the command prints, its child processes (the MLflow process, DataLoader
    workers) included: file descriptors 1 and 2, and ``sys.stdout``/``sys.stderr`` over
    them, go to files for its duration. The list gets (stdout, stderr) on exit."""
    printed: list[str] = []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        streams = {fd: io.TextIOWrapper(open(fd, "wb", closefd=False), encoding="utf-8",  # noqa: SIM115
                                        errors="replace", write_through=True) for fd in (1, 2)}
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            with contextlib.redirect_stdout(streams[1]), contextlib.redirect_stderr(streams[2]):
                yield printed
        finally:
            for fd, stream in streams.items():
                stream.flush()
                os.dup2(saved[fd], fd)
                os.close(saved[fd])
        for file in (out, err):
            file.seek(0)
            printed.append(file.read().decode("utf-8", errors="replace"))


def _script() -> str:
    """The ``serotiny`` script installed beside this interpreter."""
    return str(Path(sys.executable).parent / "serotiny")


@contextlib.contextmanager
def _as_script(args: tuple[str, ...]) -> Iterator[None]:
    """``sys.argv`` as the ``serotiny`` script sees it: Hydra names the program from it
    (shell completion scripts, for one)."""
    saved = list(sys.argv)
    sys.argv[:] = [_script(), *args]
    try:
        yield
    finally:
        sys.argv[:] = saved


def _in_process(args: tuple[str, ...], cwd: Path, env: Env) -> tuple[int, str, str]:
    """Run the CLI in this process: no interpreter, torch or Hydra to start again."""
    from serotiny_core.cli import main

    with _captured() as printed, _isolated(cwd, env), _interpreter_warnings(), _as_script(args):
        try:
            code = main(list(args))
        except SystemExit as stop:  # argparse: --help, a usage error
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    return code, *printed


def _in_subprocess(args: tuple[str, ...], cwd: Path, env: Env,
                   timeout: float) -> tuple[int, str, str]:
    """The ``serotiny`` script of this environment (a DDP launcher starts its ranks by running
    ``sys.argv`` again: a script or ``-m``, never ``-c``)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    script = _script()
    runner = [script] if Path(script).is_file() else [sys.executable, "-m", "serotiny_core.cli"]
    command = [*runner, *args]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={key: value for key, value in full_env.items() if value is not None})
    return proc.returncode, proc.stdout, proc.stderr


def run_command(args: tuple[str, ...], cwd: Path, env: Env, *, subprocess: bool = False,
                timeout: float = 300) -> tuple[int, str, str]:
    """``serotiny ARGS`` in ``cwd`` -> (exit code, stdout, stderr); ``env`` on top of this
    process's (None unsets a variable). In this process unless ``subprocess``; ``timeout``
    bounds a subprocess only."""
    if subprocess:
        return _in_subprocess(args, cwd, env, timeout)
    return _in_process(args, cwd, env)


def _job_folders(cwd: Path) -> list[Path]:
    from serotiny_core.project import find_project

    found = find_project(cwd)
    root = found.root if found is not None else cwd
    return [root / "outputs", root / "multirun"]


def _run_ids(folders: list[Path], before: list[dict[Path, int]]) -> list[str]:
    """The MLflow runs of the jobs that wrote a ``result.json`` during the command, in job order."""
    from serotiny_core.summary import read_results

    results = [r for folder, seen in zip(folders, before) for r in read_results(folder, seen)]
    return [r["run_id"] for r in sorted(results, key=lambda r: r["job"]) if r.get("run_id")]


RunSerotiny = Callable[..., SerotinyResult]


@pytest.fixture
def run_serotiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RunSerotiny:
    """``run_serotiny("train", "trainer.max_epochs=2")`` -> :class:`SerotinyResult`.

    Runs in the ``serotiny_project`` folder when the test uses that fixture
    (else pass ``cwd=``), in this process unless ``subprocess=True`` (use it
    for DDP, signals, or anything that must not share the test's process).
    ``env`` adds environment variables for the command only. The plugin
    cache is a temp folder unless ``SEROTINY_CACHE_DIR`` is set.
    """
    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            subprocess: bool = False, timeout: float = 300) -> SerotinyResult:
        from serotiny_core.summary import result_files

        if cwd is None:
            uses_project = "serotiny_project" in request.fixturenames
            cwd = request.getfixturevalue("serotiny_project").root if uses_project else Path.cwd()
        extra: Env = {"SEROTINY_CACHE_DIR": os.environ.get("SEROTINY_CACHE_DIR")
                      or str(tmp_path_factory.mktemp("serotiny-cache")), **(env or {})}
        for inherited in ("HYDRA_FULL_ERROR", "SEROTINY_DEBUG"):
            extra.setdefault(inherited, None)
        folders = _job_folders(Path(cwd))
        before = [result_files(folder) for folder in folders]
        code, out, err = run_command(args, Path(cwd), extra, subprocess=subprocess, timeout=timeout)
        return SerotinyResult(code, out, err, _run_ids(folders, before))

    return run


def _artifacts(client: Any, run_id: str, path: str | None = None) -> list[str]:
    found: list[str] = []
    for item in client.list_artifacts(run_id, path):
        found.extend(_artifacts(client, run_id, item.path) if item.is_dir else [item.path])
    return found


def read_runs(tracking_uri: str, experiment: str | None = None) -> list[RunRecord]:
    """Every run of the store (or of one experiment), oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = {e.experiment_id: e.name for e in client.search_experiments()
                   if experiment is None or e.name == experiment}
    if not experiments:
        return []
    found = client.search_runs(list(experiments), order_by=["attribute.start_time ASC"])
    return [RunRecord(run.info.run_id, run.info.run_name or "", experiments[run.info.experiment_id],
                      run.info.status, dict(run.data.metrics), dict(run.data.params),
                      dict(run.data.tags), _artifacts(client, run.info.run_id))
            for run in found]


@pytest.fixture
def mlflow_runs(request: pytest.FixtureRequest) -> Callable[..., list[RunRecord]]:
    """``mlflow_runs()`` -> the ``serotiny_project``'s runs (:class:`RunRecord`), oldest first.

    ``experiment=`` keeps one experiment; ``project=`` (a folder or a
    :class:`SerotinyProject`) reads another project's ``mlflow.db``. A
    project with no store yet has no runs.
    """
    def runs(experiment: str | None = None, project: Path | SerotinyProject | None = None) -> list[RunRecord]:
        if project is None:
            project = request.getfixturevalue("serotiny_project")
        root = project.root if isinstance(project, SerotinyProject) else Path(project)
        if not (root / "mlflow.db").is_file():
            return []
        return read_runs(f"sqlite:///{root}/mlflow.db", experiment)

    return runs
