"""Run ``train``/``test``/``predict`` through Hydra's own application entry.

The project's config folder is Hydra's primary config path; each plugin's
``serotiny_config_dirs()`` is appended after it (plugins by name, the
built-ins last) by a search-path plugin, so a project file always wins over
a plugin file of the same name. Everything a Hydra user knows (overrides,
``-m``, ``--cfg``, ``--info``, ``hydra.*`` keys) works unchanged.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from serotiny_core import resolvers
from serotiny_core.plugins import Plugins, get_plugins, ordered_config_dirs
from serotiny_core.project import Project, require_project

HYDRA_VERSION_BASE = "1.3"
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


@dataclass
class RunContext:
    """What a job needs besides its config."""

    mode: str
    project: Project
    plugins: Plugins
    strict: bool = False
    argv: list[str] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)


def _install_search_path(plugins: Plugins) -> None:
    from hydra.core.plugins import Plugins as HydraPlugins

    SerotinySearchPath.sources = [(f"serotiny-plugin:{name}", path)
                                  for name, path in ordered_config_dirs(plugins)]
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


def _task(context: RunContext) -> Callable[[Any], Any]:
    def task(cfg: Any) -> Any:
        from serotiny_core.runner import run

        try:
            result = run(cfg, context)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:
            raise JobFailed(error) from error
        context.results.append(result)
        return result.objective if result is not None else None

    return task


def _with_output_dir(overrides: list[str]) -> list[str]:
    """Outputs go under the project unless the user picked another hydra/output."""
    if any(o.lstrip("+~").startswith("hydra/output=") for o in overrides):
        return overrides
    return [OUTPUT_OVERRIDE, *overrides]


def run_command(mode: str, argv: list[str], strict: bool = False) -> int:
    """``serotiny train|test|predict [hydra args]``."""
    from hydra import version
    from hydra._internal.utils import _run_hydra, get_args_parser

    parser = get_args_parser()
    parser.prog = f"serotiny {mode}"
    args = parser.parse_args(argv)
    project = require_project(args.config_dir)
    args.config_dir = None  # the project's config folder is the primary path already
    plugins = get_plugins()
    context = RunContext(mode=mode, project=project, plugins=plugins,
                         strict=strict or project.strict, argv=[mode, *argv])
    _enter_project(project)
    _install_search_path(plugins)
    args.overrides = _with_output_dir(args.overrides)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # errors come back to the CLI, which prints one line
    version.setbase(HYDRA_VERSION_BASE)
    try:
        _run_hydra(args=args, args_parser=parser, task_function=_task(context),
                   config_path=str(project.config_dir), config_name=mode)
    except JobFailed as failed:
        raise failed.error from None
    if args.multirun and context.results:
        from serotiny_core.summary import print_multirun_summary

        print_multirun_summary(context.results)
    return 0
