"""Finding the project a command runs in: ``.serotiny``, ``[tool.serotiny]``, ``--config-dir``."""

from __future__ import annotations

from pathlib import Path

import pytest

from serotiny_core.errors import ConfigError
from serotiny_core.project import find_project, require_project


def test_marker_file_names_the_package(tmp_path: Path) -> None:
    (tmp_path / ".serotiny").write_text("my_proj\n")
    nested = tmp_path / "my_proj" / "deep"
    nested.mkdir(parents=True)
    project = find_project(nested)
    assert (project.root, project.package) == (tmp_path.resolve(), "my_proj")
    assert project.config_dir == tmp_path.resolve() / "my_proj" / "config"


def test_pyproject_table_with_config_and_settings(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.serotiny]\nconfig = "pkg/config"\nstrict = true\nallow_targets = ["torch.*"]\n')
    project = find_project(tmp_path)
    assert project.package == "pkg" and project.strict and project.allow_targets == ["torch.*"]


def test_pyproject_without_config_key_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.serotiny]\nstrict = true\n")
    with pytest.raises(ConfigError, match=r"\[tool.serotiny\] has no 'config' key"):
        find_project(tmp_path)


def test_bad_toml_and_empty_marker_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.serotiny\n")
    with pytest.raises(ConfigError, match="cannot read .*pyproject.toml"):
        find_project(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / ".serotiny").write_text("")
    with pytest.raises(ConfigError, match=r"\.serotiny is empty"):
        find_project(other)


def test_require_project_outside_a_project(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="is not inside a serotiny project") as raised:
        require_project()
    assert "serotiny init" in raised.value.hint


def test_config_dir_overrides_detection(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    project = require_project("conf")
    assert project.config_dir == (tmp_path / "conf").resolve()
    with pytest.raises(ConfigError, match="config dir 'nope' does not exist"):
        require_project("nope")
