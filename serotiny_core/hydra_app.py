"""Run ``train``/``test``/``predict`` through Hydra's own application entry.

The project's config folder is Hydra's primary config path; each plugin's
``serotiny_config_dirs()`` is appended after it (plugins by name, the
built-ins last) by a search-path plugin, so a project file always wins over
a plugin file of the same name. Last comes the registered components' own
source (:mod:`serotiny_core.component_source`): ``model=TabularVAE`` works
with no YAML file, and any file of that name wins. Everything a Hydra user
knows (overrides, ``-m``, ``--cfg``, ``--info``, ``hydra.*`` keys) works
unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, ClassVar, Iterator

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from serotiny_core import component_source, composition, interrupts, resolvers, sweep, tracking
from serotiny_core.job import (CommandContext, global_rank, override_key, rank_overrides,
                               share_with_ranks, standard_start_method)
from serotiny_core.multirun import OVERRIDE as MULTIRUN_CALLBACK
from serotiny_core.plugins import Plugins, get_plugins, ordered_config_dirs
from serotiny_core.project import Project, find_project, require_project
from serotiny_core.pruning import Pruned
from serotiny_core.redact import redact_hydra_files

HYDRA_VERSION_BASE = "1.3"
RUN_HELP = """usage: serotiny {mode} [OVERRIDE ...] [-m] [--cfg {{job,hydra,all}}] [--info [searchpath,...]]
                      [-cd CONFIG_DIR] [-cn CONFIG_NAME] [--strict] [--debug]

Composes the project's {mode}.yaml with Hydra and runs it. Overrides are Hydra's:
key=value, +key=value (add), ~key (remove), group=option (e.g. model=tabular_vae).
  -m, --multirun   one job per combination of comma-separated values
  --cfg job        print the composed config and stop
  --info searchpath  where configs are looked up
  -cd DIR          use DIR as the config folder instead of the project's
  --strict         only registered components and allow-listed targets
  --debug          show tracebacks

Run it inside a project (make one with 'serotiny init NAME') to see its config groups."""
OUTPUT_OVERRIDE = "hydra/output=serotiny"


class SerotinySearchPath(SearchPathPlugin):
    """Appends every plugin's config sources to Hydra's search path."""

    sources: ClassVar[list[tuple[str, str]]] = []

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for provider, path in self.sources:
            search_path.append(provider=provider, path=path)


class JobFailed(BaseException):
    """Carries a job's error past Hydra, which would print it as a traceback.

    A BaseException, so Hydra's ``except Exception`` lets it through and the
    CLI reports the original error as one line.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error

    def __reduce__(self) -> tuple:
        """Pickled when the job ran in another process (joblib): the error goes as the CLI
        reports it, since its chain of causes, where serotiny's own error sits, is not pickled."""
        from serotiny_core.hydra_errors import translate

        return JobFailed, (translate(self.error),)


def _install_search_path(plugins: Plugins) -> None:
    from hydra.core.plugins import Plugins as HydraPlugins

    SerotinySearchPath.sources = [*((f"serotiny-plugin:{name}", path)
                                    for name, path in ordered_config_dirs(plugins)),
                                  component_source.install(plugins)]  # last: any YAML file wins
    HydraPlugins.instance().register(SerotinySearchPath)


def _enter_project(project: Project) -> None:
    """The project's own package imports without installing it, here and in child processes."""
    root = str(project.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [root, *paths] if p)
    resolvers.set_project_root(project.root)
    resolvers.mark_command()


def _task(context: CommandContext) -> Callable[[Any], Any]:
    """Hydra's task function: one job; its return value is what a sweeper (Optuna) optimises.

    A closure over ``context``, which launchers that run jobs in other
    processes (joblib, submitit) ship there with cloudpickle.
    """
    def task(cfg: Any) -> float | Pruned | None:
        from serotiny_core.runner import execute_job

        standard_start_method()
        redact_hydra_files()
        try:
            with _own_ddp_processes():
                result = execute_job(cfg, context)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:
            raise JobFailed(error) from error
        return Pruned(result.objective) if result.pruned else result.objective

    return task


def _with_output_dir(overrides: list[str]) -> list[str]:
    """Outputs go under the project unless the user picked another hydra/output."""
    if any(override_key(o) == "hydra/output" for o in overrides):
        return overrides
    return [OUTPUT_OVERRIDE, *overrides]


@contextlib.contextmanager
def _own_ddp_processes() -> Iterator[None]:
    """A job's DDP ranks end with the job.

    Lightning leaves its rank variables (LOCAL_RANK, WORLD_SIZE, ...) in the
    environment and the process group open: the next job of a sweep would
    take them to mean its ranks exist already, and wait for processes that
    have finished. The job's other ranks learn what to run from the
    environment too (:func:`share_with_ranks`).
    """
    saved = dict(os.environ)
    share_with_ranks()
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)
        if "torch.distributed" in sys.modules:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()


@contextlib.contextmanager
def _errors_returned() -> Iterator[None]:
    """HYDRA_FULL_ERROR=1 makes Hydra raise errors to the CLI, which prints one line."""
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["HYDRA_FULL_ERROR"]
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def execute_command(mode: str, argv: list[str], strict: bool = False) -> int:
    """``serotiny train|test|predict [hydra args]``."""
    from hydra import version
    from hydra._internal.utils import _run_hydra, get_args_parser
    from hydra.core.global_hydra import GlobalHydra

    parser = get_args_parser()
    parser.prog = f"serotiny {mode}"
    args = parser.parse_args(argv)
    if args.help and find_project() is None and args.config_dir is None:
        print(RUN_HELP.format(mode=mode))  # inside a project Hydra lists its config groups too
        return 0
    project = require_project(args.config_dir)
    args.config_dir = None  # the project's config folder is the primary path already
    if _runs_one_job(args):
        tracking.start_early()
    plugins = get_plugins()
    context = CommandContext(mode=mode, project=project, plugins=plugins,
                         strict=strict or project.strict, argv=[mode, *argv])
    _enter_project(project)
    _install_search_path(plugins)
    composition.install()
    args.overrides = [*_with_output_dir(args.overrides), MULTIRUN_CALLBACK]
    ranked = rank_overrides(args.overrides)
    if ranked is not None:  # a DDP rank other than 0 runs one job: rank 0's
        args.overrides, args.multirun = ranked, False
    version.setbase(HYDRA_VERSION_BASE)
    GlobalHydra.instance().clear()  # a second command in one process (tests, notebooks)
    with _errors_returned(), interrupts.caught(), sweep.ended_on_exit():  # a Ctrl-C between jobs too
        try:
            _run_hydra(args=args, args_parser=parser, task_function=_task(context),
                       config_path=str(project.config_dir), config_name=mode)
        except JobFailed as failed:
            raise failed.error from _remote_traceback(failed)
        finally:
            _end_joblib_workers()
    return 0


def _end_joblib_workers() -> None:
    """Joblib's worker processes end with the command that started them.

    Loky keeps them for the process's next parallel call: the next command
    of a notebook or test run would run its jobs in them, with this
    command's environment, ``sys.path`` and imported project modules.
    """
    if "joblib.externals.loky" not in sys.modules:
        return
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)


def _remote_traceback(failed: JobFailed) -> BaseException | None:
    """The job's traceback where it ran in another process (joblib attaches it as the cause),
    so --debug shows where the job failed, not only where its error was raised again here."""
    cause = failed.__cause__
    return None if cause is None or cause is failed.error else cause


def _runs_one_job(args: Any) -> bool:
    """A plain run on rank 0: the one case where MLflow is worth starting before composing."""
    asks = (args.multirun, args.cfg, args.info, args.shell_completion, args.help, args.hydra_help)
    return not any(asks) and global_rank() == 0
