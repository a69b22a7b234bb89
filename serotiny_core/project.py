"""Find the serotiny project a command runs in.

A project root is the nearest folder, from the working directory upward,
holding a ``.serotiny`` file (its content: the package name, as the
serotiny-project-cookiecutter writes it) or a ``pyproject.toml`` with a
``[tool.serotiny]`` table. ``--config-dir`` overrides both.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serotiny_core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

NOT_A_PROJECT_HINT = "create one with 'serotiny init NAME', or pass --config-dir PATH"


@dataclass(frozen=True)
class Project:
    """A project's root folder, its config folder and its ``[tool.serotiny]`` settings."""

    root: Path
    config_dir: Path
    package: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def strict(self) -> bool:
        return bool(self.settings.get("strict", False))

    @property
    def allow_targets(self) -> list[str]:
        return list(self.settings.get("allow_targets", []))


def _tool_settings(pyproject: Path) -> dict[str, Any] | None:
    """The ``[tool.serotiny]`` table of a pyproject.toml, or None when absent."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {pyproject}: {error}",
                          hint="fix the TOML syntax") from error
    table = data.get("tool", {}).get("serotiny")
    return dict(table) if isinstance(table, dict) else None


def _package_from_marker(marker: Path) -> str:
    text = marker.read_text(encoding="utf-8").strip()
    name = text.splitlines()[0].split("=")[-1].strip().strip("\"'") if text else ""
    if not name:
        raise ConfigError(f"{marker} is empty",
                          hint="write the project's package name into it, e.g. 'my_project'")
    return name


def _at(folder: Path) -> Project | None:
    """The project rooted exactly at ``folder``, if it is one."""
    marker = folder / ".serotiny"
    pyproject = folder / "pyproject.toml"
    settings = _tool_settings(pyproject) if pyproject.is_file() else None
    if marker.is_file():
        package = _package_from_marker(marker)
        config = (settings or {}).get("config", f"{package}/config")
        return Project(folder, folder / config, package, settings or {})
    if settings is not None:
        config = settings.get("config")
        if not config:
            raise ConfigError(f"{pyproject}: [tool.serotiny] has no 'config' key",
                              hint="add config = \"<package>/config\"")
        package = Path(config).parts[0] if len(Path(config).parts) > 1 else None
        return Project(folder, folder / config, package, settings)
    return None


def find_project(start: Path | None = None) -> Project | None:
    """The nearest project from ``start`` (default: the working directory) upward."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        project = _at(folder)
        if project is not None:
            return project
    return None


def require_project(config_dir: str | None = None) -> Project:
    """The project a command runs in; ``config_dir`` (``-cd``) overrides detection."""
    if config_dir is not None:
        chosen = Path(config_dir).resolve()
        if not chosen.is_dir():
            raise ConfigError(f"config dir {config_dir!r} does not exist",
                              hint="pass an existing folder to --config-dir")
        found = find_project() or find_project(chosen)
        root = found.root if found else Path.cwd().resolve()
        return Project(root, chosen, found.package if found else None, found.settings if found else {})
    project = find_project()
    if project is None:
        raise ConfigError(f"{Path.cwd()} is not inside a serotiny project", hint=NOT_A_PROJECT_HINT)
    if not project.config_dir.is_dir():
        raise ConfigError(f"project {project.root} has no config folder {project.config_dir}",
                          hint="create it, or fix the package name in .serotiny / [tool.serotiny] config")
    return project
