"""Other people's YAML composes with ours: defaults lists as users write them, keys without +, callback files.

Each test runs the real CLI on a project laid out as a user's would be (its
own train.yaml naming packaged, plugin and project options together), with a
plugin installed as a real distribution.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import serotiny_plugins
from conftest import Result, make_plugin, run_cli
from projects import seed_project, write

EXTRAS_PLUGIN = '''
from serotiny_core import hookimpl

@hookimpl
def serotiny_config_dirs():
    return ["pkg://extras_pkg.config"]
'''

MARKER_CALLBACK = '''
import json
from pathlib import Path

from pytorch_lightning import Callback


class Marker(Callback):
    """Appends its name to <output dir>/callbacks.json when fitting ends: which ran, in order."""

    def __init__(self, name):
        self.name = name

    def on_fit_end(self, trainer, pl_module):
        path = Path(trainer.default_root_dir, "callbacks.json")
        ran = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps([*ran, self.name]))
'''

PLUGIN_CALLBACKS = """\
- _target_: extras_pkg.callbacks.Marker
  name: plugin-1
- _target_: extras_pkg.callbacks.Marker
  name: plugin-2
"""

PROJECT_CALLBACKS = """\
- _target_: extras_pkg.callbacks.Marker
  name: project
"""

MAPPING_CALLBACKS = """\
early_stopping:
  _target_: EarlyStopping
  monitor: val_loss
  patience: 5
marker:
  _target_: extras_pkg.callbacks.Marker
  name: mapping
"""

SEED_SHAPED_TRAIN = """\
defaults:
  - data: cells
  - model: tabular_vae
  - trainer: cpu
  - trainer/callbacks: plugin_extras
  - mlflow: default
  - _self_
"""

PACKAGED_GROUPS = ("model", "data", "trainer", "trainer/callbacks", "mlflow")


@pytest.fixture
def seed_shaped(tmp_path: Path, site: Path, site_env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """The seed's project, its train.yaml naming the packaged `trainer: cpu` and a plugin's callbacks."""
    make_plugin(site, "serotiny-extras", "0.1", "extras", "extras_pkg.plugin", EXTRAS_PLUGIN,
                files={"callbacks.py": MARKER_CALLBACK, "config/__init__.py": "",
                       "config/trainer/callbacks/plugin_extras.yaml": PLUGIN_CALLBACKS})
    root = seed_project(tmp_path / "a_tiny_project")
    config = root / "a_tiny_project" / "config"
    write(config / "train.yaml", SEED_SHAPED_TRAIN)
    write(config / "trainer" / "callbacks" / "project_marker.yaml", PROJECT_CALLBACKS)
    write(config / "trainer" / "callbacks" / "lht.yaml", MAPPING_CALLBACKS)
    return root, site_env


def composed(root: Path, env: dict[str, str], *overrides: str) -> dict:
    result = run_cli("train", "--cfg", "job", *overrides, cwd=root, env=env)
    assert result.code == 0, result.text
    return yaml.safe_load(result.out)


def error_line(result: Result) -> str:
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    [line] = [line for line in result.err.splitlines() if line.startswith("error:")]
    return line


def packaged_options() -> list[str]:
    config = Path(serotiny_plugins.__file__).parent / "config"
    return [f"{group}={path.stem}" for group in PACKAGED_GROUPS
            for path in sorted((config / group).glob("*.yaml"))]


def test_seed_defaults_list_composes_every_packaged_option(seed_shaped):
    root, env = seed_shaped
    cfg = composed(root, env)
    assert cfg["trainer"]["accelerator"] == "cpu"
    assert [c["name"] for c in cfg["trainer"]["callbacks"]] == ["plugin-1", "plugin-2"]
    for option in packaged_options():
        result = run_cli("train", "--cfg", "job", option, cwd=root, env=env)
        assert result.code == 0, f"{option}: {result.text}"


def test_callback_files_from_project_and_plugin_all_run_in_order(seed_shaped):
    root, env = seed_shaped
    result = run_cli("train", "trainer/callbacks=[project_marker,plugin_extras]", "trainer.max_epochs=1",
                     f"data.path={root}/data/cells.csv", "data.num_workers=0", cwd=root, env=env)
    assert result.code == 0, result.text
    [ran] = list((root / "outputs" / "train").glob("*/*/callbacks.json"))
    assert json.loads(ran.read_text()) == ["project", "plugin-1", "plugin-2"]


def test_mapping_form_files_merge_and_take_overrides_by_name(seed_shaped):
    root, env = seed_shaped
    cfg = composed(root, env, "trainer/callbacks=[lht,plugin_extras]",
                   "trainer.callbacks.early_stopping.patience=3")
    callbacks = cfg["trainer"]["callbacks"]
    assert list(callbacks) == ["early_stopping", "marker", "plugin_extras"]
    assert callbacks["early_stopping"]["patience"] == 3
    assert [c["name"] for c in callbacks["plugin_extras"]] == ["plugin-1", "plugin-2"]
    one = composed(root, env, "trainer/callbacks=plugin_extras", "trainer.callbacks.1.name=renamed")
    assert [c["name"] for c in one["trainer"]["callbacks"]] == ["plugin-1", "renamed"]


def test_a_list_file_named_like_a_mapping_entry_is_one_line(seed_shaped):
    root, env = seed_shaped
    write(root / "a_tiny_project" / "config" / "trainer" / "callbacks" / "marker.yaml", PROJECT_CALLBACKS)
    result = run_cli("train", "--cfg", "job", "trainer/callbacks=[lht,marker]", cwd=root, env=env)
    line = error_line(result)
    assert "trainer/callbacks" in line and "'marker'" in line


def test_constructor_arguments_and_serotiny_keys_need_no_plus(seed_shaped):
    root, env = seed_shaped
    write(root / "a_tiny_project" / "config" / "train.yaml",
          SEED_SHAPED_TRAIN.replace("trainer: cpu", "trainer: default"))
    cfg = composed(root, env, "trainer.strategy=ddp", "trainer.devices=2", "model.beta=0.5",
                   "ckpt_path=/runs/last.ckpt", "test_after_fit=true", "optimized_metric=val_kld",
                   "seed=3", "mlflow.run_id=abc", "mlflow.tags.team=cells", "mlflow.log_checkpoints=best")
    assert cfg["trainer"]["strategy"] == "ddp" and cfg["trainer"]["devices"] == 2
    assert cfg["model"]["beta"] == 0.5
    assert (cfg["ckpt_path"], cfg["test_after_fit"], cfg["optimized_metric"], cfg["seed"]) == (
        "/runs/last.ckpt", True, "val_kld", 3)
    assert cfg["mlflow"]["run_id"] == "abc" and cfg["mlflow"]["tags"] == {"team": "cells"}
    assert cfg["mlflow"]["log_checkpoints"] == "best"
    packaged = composed(root, env, "mlflow=local", "mlflow.tags.team=cells")
    assert packaged["mlflow"]["tags"] == {"team": "cells"}


@pytest.mark.parametrize(("typo", "meant"), [
    ("trainer.max_epoch=3", "'max_epochs'"),
    ("model.latent_dimm=4", "'latent_dim'"),
    ("ckpt_pth=x", "'ckpt_path'"),
    ("mlflow.run_nam=x", "'mlflow.run_name'"),
    ("trainer.callbacks.0.nmae=x", "'name'"),
])
def test_typos_fail_in_one_line_with_did_you_mean_before_data_is_read(seed_shaped, typo, meant):
    root, env = seed_shaped
    result = run_cli("train", typo, "data.path=/nowhere/cells.csv", cwd=root, env=env)
    line = error_line(result)
    assert typo.split("=")[0].rsplit(".", 1)[-1] in line and f"did you mean {meant}" in line
    assert "/nowhere" not in result.text


def test_a_new_key_in_a_plain_mapping_keeps_hydras_rule(seed_shaped):
    root, env = seed_shaped
    line = error_line(run_cli("train", "--cfg", "job", "data.loaders.y=3", cwd=root, env=env))
    assert "+data.loaders.y=3" in line
    cfg = composed(root, env, "+data.loaders.y={_target_: LoadColumn, column: feature_0}")
    assert cfg["data"]["loaders"]["y"]["column"] == "feature_0"


def test_sweeps_over_a_key_the_config_lacks(seed_shaped):
    root, env = seed_shaped
    typo = run_cli("train", "-m", "model.latent_dimm=2,4", cwd=root, env=env)
    assert "did you mean 'latent_dim'" in error_line(typo)
    swept = run_cli("train", "-m", "trainer.min_epochs=0,1", "trainer.max_epochs=1",
                    "trainer/callbacks=[]", f"data.path={root}/data/cells.csv", "data.num_workers=0",
                    cwd=root, env=env)
    assert swept.code == 0, swept.text
    jobs = sorted((root / "multirun" / "train").glob("*/*/*/.hydra/config.yaml"))
    assert [yaml.safe_load(p.read_text())["trainer"]["min_epochs"] for p in jobs] == [0, 1]


def test_seed_predict_yaml_takes_ckpt_path(tmp_path):
    root = seed_project(tmp_path / "a_tiny_project")
    data = f"data.path={root}/data/cells.csv"
    trained = run_cli("train", data, "trainer.max_epochs=1", "data.num_workers=0", cwd=root)
    assert trained.code == 0, trained.text
    [ckpt] = list((root / "outputs" / "train").glob("*/*/checkpoints/last.ckpt"))
    predicted = run_cli("predict", f"ckpt_path={ckpt}", data, "data.num_workers=0", cwd=root)
    assert predicted.code == 0, predicted.text
    assert list((root / "outputs" / "predict").glob("*/*/predictions/predictions.parquet"))


def test_help_lists_only_groups_a_user_picks(project):
    result = run_cli("train", "--help", cwd=project)
    assert result.code == 0, result.text
    groups = [line.split(":")[0] for line in result.out.split("== Config ==")[0].splitlines()
              if ": " in line]
    assert {"data", "model", "trainer", "trainer/callbacks", "mlflow"} <= set(groups)
    assert not [g for g in groups if g.startswith(("defaults", "hydra"))]
