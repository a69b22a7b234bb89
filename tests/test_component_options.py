"""Every registered component is an option of its kind's config group, with no YAML file."""

from __future__ import annotations

import json

import pytest

from conftest import make_plugin, run_cli
from projects import widgets, write


def job(project, *overrides: str, env: dict | None = None) -> str:
    result = run_cli("train", *overrides, "--cfg", "job", cwd=project, env=env)
    assert result.code == 0, result.text
    return result.out


def test_builtin_components_by_name_without_yaml(project):
    shown = job(project, "model=TabularVAE", "model.x_dim=100", "model.latent_dim=4",
                "model.hidden_layers=[16]")
    assert "_target_: TabularVAE" in shown and "x_dim: 100" in shown and "beta: 1.0" in shown
    data = job(project, "data=ManifestDatamodule")
    assert "_target_: ManifestDatamodule" in data and "path: ???" in data and "batch_size: 64" in data
    callbacks = job(project, "trainer/callbacks=EarlyStopping")
    assert "  callbacks:\n  - _target_: EarlyStopping\n    monitor: ???\n" in callbacks
    assert "patience: 3" in callbacks
    assert "_target_: TabularVAE" in job(project, "model=serotiny.models.TabularVAE")


def test_missing_required_arguments_are_all_named_in_one_line(project):
    result = run_cli("train", "--strict", "model=TabularVAE", "model.x_dim=16", cwd=project)
    assert result.code == 2, result.text
    [line] = [l for l in result.err.splitlines() if l.startswith("error:")]
    assert "'latent_dim', 'hidden_layers'" in line and "Traceback" not in result.text
    assert not list(project.glob("outputs/train/*/*/checkpoints"))


def test_a_generated_option_trains(project):
    result = run_cli("train", "model=TabularVAE", "model.x_dim=16", "model.latent_dim=2",
                     "model.hidden_layers=[8]", "trainer.max_epochs=1", cwd=project)
    assert result.code == 0, result.text
    assert list(project.glob("outputs/train/*/*/checkpoints/last.ckpt"))


def test_plugin_components_by_name_and_yaml_files_win(project, site, site_env):
    widgets(site)
    widget = job(project, "model=Widget", env=site_env)
    assert "_target_: Widget\n  size: ???\n  depth: 3\n  label: w\n" in widget
    assert "_target_: Widget" in job(project, "model=widgets.models.Widget", env=site_env)
    ping = job(project, "trainer/callbacks=Ping", env=site_env)
    assert "- _target_: Ping\n    every: ???\n    loud: false\n" in ping
    assert "size: 5\n" in job(project, "model=Gadget", env=site_env)  # the plugin's file
    write(project / "proj" / "config" / "model" / "Widget.yaml", "_target_: Widget\nsize: 7\n")
    assert "size: 7\n" in job(project, "model=Widget", env=site_env)  # the project's file


def test_options_are_listed_without_importing_components(project, site, site_env):
    widgets(site)
    help_text = run_cli("train", "--help", cwd=project, env=site_env)
    assert help_text.code == 0, help_text.text
    [models] = [l for l in help_text.out.splitlines() if l.startswith("model: ")]
    assert {"Widget", "Gadget", "Heavy", "TabularVAE", "default"} <= set(models[7:].split(", "))
    assert "widgets.models.Widget" not in models  # dotted aliases work, but are not offered
    [callbacks] = [l for l in help_text.out.splitlines() if l.startswith("trainer/callbacks: ")]
    assert "Ping" in callbacks and "EarlyStopping" in callbacks
    listed = json.loads(run_cli("list-components", "--json", cwd=project, env=site_env).out)
    options = {c["name"]: c["option"] for c in listed["components"]}
    assert options["Widget"] == "model=Widget" and options["Ping"] == "trainer/callbacks=Ping"
    assert options["ManifestDatamodule"] == "data=ManifestDatamodule" and options["LoadColumns"] == ""
    heavy = run_cli("train", "model=Heavy", "--cfg", "job", cwd=project, env=site_env)
    assert heavy.code == 2 and "Traceback" not in heavy.text
    assert "model=Heavy" in heavy.err and "widgets.heavy was imported" in heavy.err


def test_clashing_names_are_offered_qualified(project, site, site_env):
    for name in ("one", "two"):
        make_plugin(site, f"serotiny-{name}", "1.0", name, f"{name}_pkg.plugin", f'''
from serotiny_core import Component, hookimpl

class W:
    def __init__(self, width: int = {len(name)}):
        pass

@hookimpl
def serotiny_components():
    return [Component(kind="model", name="Widget", target="{name}_pkg.plugin.W")]
''')
    assert "_target_: two:Widget\n  width: 3\n" in job(project, "model=two:Widget", env=site_env)
    bare = run_cli("train", "model=Widget", "--cfg", "job", cwd=project, env=site_env)
    assert bare.code == 2 and "one:Widget" in bare.err and "two:Widget" in bare.err


@pytest.mark.slow
def test_generated_options_compose_in_joblib_workers(project):
    """joblib composes each job in a worker process, from the pickled config loader."""
    result = run_cli("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "model=TabularVAE", "model.x_dim=16", "model.latent_dim=2,3",
                     "model.hidden_layers=[8]", "trainer.max_epochs=1", "mlflow.tracking_uri=null",
                     cwd=project, subprocess=True)
    assert result.code == 0, result.text
    assert len(list(project.glob("multirun/train/*/*/*/checkpoints/last.ckpt"))) == 2
