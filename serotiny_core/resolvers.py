"""OmegaConf resolvers serotiny configs may use.

``${project_root:}`` is the project's root folder and ``${project_name:}`` its name, so packaged configs can
say "inside the project" (``sqlite:///${project_root:}/mlflow.db``);
``${process_id:}`` tells apart output folders of commands started in the same second. The root
travels in an environment variable so that processes Hydra launchers and
Lightning start for other jobs and ranks resolve it the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

ROOT_ENV = "SEROTINY_PROJECT_ROOT"
COMMAND_PID_ENV = "SEROTINY_COMMAND_PID"


def set_project_root(root: Path) -> None:
    """Make ``${project_root:}`` resolve to ``root`` here and in child processes."""
    os.environ[ROOT_ENV] = str(root)


def project_root() -> str:
    return os.environ.get(ROOT_ENV) or os.getcwd()


def project_name() -> str:
    """The project folder's name: the default MLflow experiment."""
    return Path(project_root()).name


def mark_command() -> None:
    """Make ``${process_id:}`` this command's process id here and in the processes it starts.

    Launchers (joblib, submitit) resolve a job's folder again in their own
    workers; with their own process ids there, jobs would write outside the
    sweep folder the command reads the summary from.
    """
    os.environ[COMMAND_PID_ENV] = str(os.getpid())


def process_id() -> str:
    """The command's process id: unique among the commands running on a machine."""
    return os.environ.get(COMMAND_PID_ENV) or str(os.getpid())


OmegaConf.register_new_resolver("project_root", project_root, replace=True)
OmegaConf.register_new_resolver("process_id", process_id, replace=True)
OmegaConf.register_new_resolver("project_name", project_name, replace=True)
