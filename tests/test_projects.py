"""Projects end to end: the real CLI in a subprocess, on temp projects and real files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_plugin, run_cli
from projects import cookiecutter_project, seed_project, store_client, store_runs, write

PLUGIN_WITH_CONFIG = '''
from serotiny_core import hookimpl

@hookimpl
def serotiny_components():
    return []

@hookimpl
def serotiny_config_dirs():
    return ["pkg://vaeplug.config"]
'''

PLUGIN_MODEL = """\
_target_: TabularVAE
x_dim: 16
latent_dim: 3
hidden_layers: [8]
x_label: x
"""


def test_init_then_train_tracks_to_sqlite(serotiny_project, run_serotiny, mlflow_runs):
    result = run_serotiny("train", "trainer.max_epochs=2")
    assert result.code == 0, result.text
    [run] = mlflow_runs("proj")
    assert run.run_id == result.run_id and run.status == "FINISHED"
    assert run.params["model/latent_dim"] == "2"
    assert run.params["trainer/max_epochs"] == "2"
    assert "val_loss" in run.metrics and "train_loss" in run.metrics
    assert run.tags["serotiny.plugin.serotiny"].startswith("serotiny==")
    assert run.tags["serotiny.command"].startswith("serotiny train")
    assert {"checkpoints/last.ckpt", "checkpoints/best.ckpt"} <= set(run.artifacts)
    outputs = list((serotiny_project.root / "outputs" / "train").glob("*/*/checkpoints/last.ckpt"))
    assert len(outputs) == 1


def test_seed_project_trains_verbatim(tmp_path):
    root = seed_project(tmp_path / "a_tiny_project")
    result = run_cli("train", f"data.path={root}/data/cells.csv", cwd=root)
    assert result.code == 0, result.text
    [run] = store_runs(root, "tiny")
    assert run.info.run_name == "tabular_vae-latent16"
    assert run.info.status == "FINISHED"
    [written] = list((root / "outputs" / "train").glob("*/*/custom_callback.json"))
    assert json.loads(written.read_text()) == {"param1": "a", "param2": "b", "more_params": [1, 2, 3]}


def test_cookiecutter_project_with_lightning1_keys_and_empty_callbacks(tmp_path):
    root = cookiecutter_project(tmp_path / "my_project")
    result = run_cli("train", cwd=root)
    assert result.code == 0, result.text
    assert result.text.count("Lightning 1.x keys") == 1
    assert "gpus" in result.text
    [run] = store_runs(root, "my_project")
    assert run.info.status == "FINISHED"


def test_config_group_from_a_plugin_and_project_precedence(project, site, site_env):
    make_plugin(site, "serotiny-vaeplug", "0.1", "vaeplug", "vaeplug.plugin", PLUGIN_WITH_CONFIG,
                files={"config/model/plugin_vae.yaml": PLUGIN_MODEL, "config/__init__.py": ""})
    shown = run_cli("train", "model=plugin_vae", "--cfg", "job", cwd=project, env=site_env)
    assert shown.code == 0, shown.text
    assert "latent_dim: 3" in shown.out
    write(project / "proj" / "config" / "model" / "plugin_vae.yaml", PLUGIN_MODEL.replace("latent_dim: 3", "latent_dim: 5"))
    shown = run_cli("train", "model=plugin_vae", "--cfg", "job", cwd=project, env=site_env)
    assert "latent_dim: 5" in shown.out
    info = run_cli("train", "--info", "searchpath", cwd=project, env=site_env)
    lines = info.out.splitlines()
    where = {name: next(i for i, line in enumerate(lines) if name in line)
             for name in ("proj/config", "pkg://vaeplug.config", "pkg://serotiny_plugins.config")}
    assert where["proj/config"] < where["pkg://vaeplug.config"] < where["pkg://serotiny_plugins.config"]


def test_cfg_job_shows_overrides_without_training(project):
    result = run_cli("train", "model.latent_dim=7", "--cfg", "job", cwd=project)
    assert result.code == 0, result.text
    assert "latent_dim: 7" in result.out
    assert not (project / "outputs").exists()


def test_multirun_makes_one_run_per_job_and_a_summary(serotiny_project, run_serotiny, mlflow_runs):
    result = run_serotiny("train", "-m", "model.latent_dim=2,3", "mlflow.run_name=sweep")
    assert result.code == 0, result.text
    parent, *found = mlflow_runs("proj")
    assert parent.name == "sweep" and parent.tags["serotiny.mode"] == "sweep"
    assert all(r.tags["mlflow.parentRunId"] == parent.run_id for r in found)
    assert sorted(r.name for r in found) == ["sweep-0", "sweep-1"]
    assert sorted(r.params["model/latent_dim"] for r in found) == ["2", "3"]
    assert sorted(result.run_ids) == sorted(r.run_id for r in found)
    assert "multirun summary" in result.out
    assert "model.latent_dim=2" in result.out and "model.latent_dim=3" in result.out


def test_unknown_target_is_one_line_with_suggestions(serotiny_project, run_serotiny):
    result = run_serotiny("train", "model._target_=TabulrVAE")
    assert result.code == 2
    assert "Traceback" not in result.text
    [line] = [l for l in result.err.splitlines() if l.startswith("error:")]
    assert "model._target_" in line and "TabulrVAE" in line and "'TabularVAE'" in line


def test_parameter_typo_stops_before_data_is_read(serotiny_project, run_serotiny):
    result = run_serotiny("train", "+model.latent_dimm=3", "data.path=/nowhere/manifest.csv")
    assert result.code == 2, result.text
    assert "latent_dimm" in result.err and "'latent_dim'" in result.err
    assert "/nowhere" not in result.err and "Traceback" not in result.text


def test_missing_required_argument(project):
    result = run_cli("train", "~model.x_dim", cwd=project)
    assert result.code == 2
    assert "'x_dim'" in result.err and "Traceback" not in result.text


def test_outside_a_project_says_how_to_make_one(tmp_path):
    result = run_cli("train", cwd=tmp_path)
    assert result.code == 2
    assert "serotiny init" in result.err and "Traceback" not in result.text


def test_unknown_group_option_lists_the_available_ones(project):
    result = run_cli("train", "model=nope", cwd=project)
    assert result.code == 2
    assert "Traceback" not in result.text
    assert "tabular_vae" in result.err and "default" in result.err


def test_test_and_predict_with_a_checkpoint(serotiny_project, run_serotiny):
    project = serotiny_project.root
    assert run_serotiny("train").code == 0
    [ckpt] = list((project / "outputs" / "train").glob("*/*/checkpoints/last.ckpt"))
    tested = run_serotiny("test", f"ckpt_path={ckpt}")
    assert tested.code == 0, tested.text
    assert "test_loss" in tested.text
    predicted = run_serotiny("predict", f"ckpt_path={ckpt}")
    assert predicted.code == 0, predicted.text
    [written] = list((project / "outputs" / "predict").glob("*/*/predictions/predictions.parquet"))
    frame = pd.read_parquet(written)
    manifest = pd.read_csv(serotiny_project.manifest)
    assert len(frame) == len(manifest)
    assert {"sample_id", "z_mean_0", "z_mean_1"} <= set(frame.columns)
    assert sorted(frame["sample_id"]) == sorted(manifest["sample_id"])


@pytest.mark.parametrize("bad", ["ckpt_path=/nowhere/last.ckpt"])
def test_missing_checkpoint_is_a_clear_error(project, bad):
    result = run_cli("test", bad, cwd=project)
    assert result.code == 2
    assert "/nowhere/last.ckpt" in result.err and "Traceback" not in result.text


def test_packaged_configs_train_as_shipped(project):
    import tifffile
    import numpy as np

    regression = run_cli("train", "model=basic_model", "data=manifest", "trainer.max_epochs=1", cwd=project)
    assert regression.code == 0, regression.text
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        path = project / "data" / "images" / f"cell{i}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, rng.random((64, 64)).astype("float32"))
        rows.append({"path": str(path), "split": "train" if i < 16 else "val"})
    pd.DataFrame(rows).to_csv(project / "data" / "images.csv", index=False)
    images = run_cli("train", "model=image_vae", "data=images", "data.num_workers=0",
                     "trainer.max_epochs=1", cwd=project)
    assert images.code == 0, images.text
    pictures = run_cli("train", "model=tabular_vae", "data=manifest", "trainer/callbacks=reconstructions",
                       "trainer.callbacks.0.every_n_epochs=1", "trainer.max_epochs=1",
                       "mlflow.run_name=pictures", cwd=project)
    assert pictures.code == 0, pictures.text
    assert list(project.glob("outputs/train/*/*/reconstructions/*.png"))
    [run] = [run for run in store_runs(project) if run.info.run_name == "pictures"]
    assert [a.path for a in store_client(project).list_artifacts(run.info.run_id, "reconstructions")]


def test_init_prints_lines_that_paste_into_a_shell_with_a_spaced_name(tmp_path):
    result = run_cli("init", "My Project", cwd=tmp_path)
    assert result.code == 0, result.text
    [cd] = [line.strip() for line in result.out.splitlines() if line.strip().startswith("cd ")]
    store = result.out.split("--backend-store-uri ", 1)[1].strip()
    shell = subprocess.run(["bash", "-c", f"{cd} && pwd && printf '%s' {store}"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert shell.returncode == 0, shell.stderr
    folder, uri = shell.stdout.splitlines()
    assert Path(folder) == tmp_path / "My Project"
    assert uri == f"sqlite:///{tmp_path}/My Project/mlflow.db"
