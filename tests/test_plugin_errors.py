"""Errors that point at the cause: broken plugins' tracebacks, the file a bad target came from."""

from __future__ import annotations

from conftest import make_plugin, run_cli

RAISING_HOOK = '''
from serotiny_core import hookimpl


def _declared():
    raise KeyError("kind")


@hookimpl
def serotiny_components():
    return _declared()
'''

BROKEN_IMPORT = '''
import a_dependency_that_is_missing
from serotiny_core import hookimpl


@hookimpl
def serotiny_config_dirs():
    return ["pkg://shapes.config"]
'''


def test_list_components_debug_prints_the_traceback_of_a_raising_hook(site, site_env, tmp_path):
    make_plugin(site, "serotiny-raising", "0.1", "raising", "raising.plugin", RAISING_HOOK)
    plain = run_cli("list-components", cwd=tmp_path, env=site_env)
    assert plain.code == 0 and "Traceback" not in plain.text
    assert "serotiny_components() raised KeyError" in plain.out and "--debug" in plain.out
    debug = run_cli("list-components", "--debug", cwd=tmp_path, env=site_env)
    assert debug.code == 0
    assert "Traceback" in debug.err and "raising/plugin.py" in debug.err and "in _declared" in debug.err
    assert "plugin 'raising' (serotiny-raising==0.1)" in debug.err


def test_a_missing_group_option_names_the_broken_plugin_that_might_provide_it(project, site, site_env):
    make_plugin(site, "serotiny-shapes", "0.3", "shapes", "shapes.plugin", BROKEN_IMPORT,
                files={"config/__init__.py": "", "config/model/shape_model.yaml": "_target_: X\n"})
    result = run_cli("train", "model=shape_model", cwd=project, env=site_env)
    assert result.code == 2 and "Traceback" not in result.text
    # The MLflow process, started early, may note that it made the store's tables.
    [line] = [text for text in result.err.splitlines() if " INFO mlflow." not in text]
    assert "Could not find 'model/shape_model'" in line
    assert "'shapes' (serotiny-shapes)" in line and "a_dependency_that_is_missing" in line


def test_an_unknown_target_names_the_yaml_file_or_the_command_line(serotiny_project, run_serotiny):
    model = serotiny_project.config_dir / "model" / "default.yaml"
    model.write_text(model.read_text().replace("serotiny.models.TabularVAE", "TabulrVAE"))
    from_file = run_serotiny("train")
    assert from_file.code == 2
    assert f"model._target_ (from {model}): unknown target 'TabulrVAE'" in from_file.err
    from_override = run_serotiny("train", "model._target_=TabularVA")
    assert from_override.code == 2 and "model._target_ (from the command line)" in from_override.err


def test_strict_gives_an_unknown_name_the_did_you_mean_hint(serotiny_project, run_serotiny):
    result = run_serotiny("train", "--strict", "model._target_=TabulrVAE")
    assert result.code == 2 and "Traceback" not in result.text
    # The MLflow process, started early, may note that it made the store's tables.
    [line] = [text for text in result.err.splitlines() if " INFO mlflow." not in text]
    assert "unknown target 'TabulrVAE'" in line and "did you mean 'TabularVAE'" in line
    assert "allow-list" not in line and "allow_targets" not in line
