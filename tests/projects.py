"""Builders for the project layouts the tests train (seed-verbatim, cookiecutter-shaped), the
one manifest builder and the one way to read a project's MLflow store."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from conftest import make_plugin

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

SEED_MODEL = """\
_target_: serotiny.models.TabularVAE
x_dim: 100
latent_dim: 16
hidden_layers: [32, 32, 32]
x_label: "x"
optimizer:
  _partial_: true
  _target_: torch.optim.Adam
  lr: 1e-3
"""

SEED_DATA = """\
_target_: serotiny.datamodules.ManifestDatamodule

path: /path/to/a/csv/file.csv
batch_size: 64
num_workers: 1
loaders:
  x:
    _target_: serotiny.io.dataframe.loaders.LoadColumns
    startswith: feature_

split_column: "split"
"""

SEED_CALLBACKS = """\
- _target_: pytorch_lightning.callbacks.EarlyStopping
  monitor: val_loss
  patience: 5
  min_delta: 0.1

- _target_: a_tiny_project.callbacks.YourCustomCallback
  param1: "a"
  param2: "b"
  more_params: [1,2,3]
"""

CUSTOM_CALLBACK = '''\
import json
from pathlib import Path

from pytorch_lightning import Callback


class YourCustomCallback(Callback):
    def __init__(self, param1, param2, more_params):
        self.params = {"param1": param1, "param2": param2, "more_params": list(more_params)}

    def on_fit_end(self, trainer, pl_module):
        Path(trainer.default_root_dir, "custom_callback.json").write_text(json.dumps(self.params))
'''


def git(*args: str, cwd: Path) -> str:
    """``git ARGS`` in ``cwd`` as a user with no git configuration of their own; its output."""
    command = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def manifest_frame(rows: int = 240, features: int = 100, seed: int = 0,
                   splits: tuple[str, ...] = ("train", "valid", "test"),
                   id_column: str = "CellId") -> pd.DataFrame:
    """Features ``feature_0..`` from 2 hidden factors, a split column (``splits`` in turn), ids."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(rows, 2))
    x = np.tanh(factors @ rng.normal(size=(2, features))) + 0.05 * rng.normal(size=(rows, features))
    frame = pd.DataFrame(x.astype("float32"), columns=[f"feature_{i}" for i in range(features)])
    frame.insert(0, "split", [splits[i % len(splits)] for i in range(rows)])
    frame.insert(0, id_column, [f"cell{i}" for i in range(rows)])
    return frame


def manifest(path: Path, rows: int = 240, features: int = 100, seed: int = 0,
             splits: tuple[str, ...] = ("train", "valid", "test"), id_column: str = "CellId") -> Path:
    """Write :func:`manifest_frame` to ``path``: CSV, or parquet by the suffix."""
    frame = manifest_frame(rows, features, seed, splits, id_column)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def store_client(where: Path | str) -> MlflowClient:
    """The MLflow client of a project folder's SQLite store, or of a tracking URI."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(where if isinstance(where, str) else f"sqlite:///{where}/mlflow.db")


def store_runs(where: Path | str, experiment: str = "proj", count: int | None = None,
               jobs_only: bool = False) -> list[Run]:
    """The runs of ``experiment`` in a project's store (or a tracking URI), oldest first;
    with ``count``, there must be that many; ``jobs_only`` leaves out sweeps' parent runs."""
    client = store_client(where)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id], "tags.`serotiny.mode` != 'sweep'" if jobs_only else "",
                              order_by=["attributes.start_time ASC"])
    assert count is None or len(runs) == count, [run.info.run_name for run in runs]
    return runs


def all_runs(where: Path | str) -> list[Run]:
    """Every run of every experiment in a project's store (a swept experiment name spreads
    a sweep's jobs over several), oldest first."""
    client = store_client(where)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, order_by=["attributes.start_time ASC"])


def sweep_runs(where: Path | str) -> tuple[list[Run], list[Run]]:
    """(parents, children) of every sweep in the store: a parent is tagged serotiny.mode=sweep."""
    found = all_runs(where)
    parents = [r for r in found if r.data.tags.get("serotiny.mode") == "sweep"]
    return parents, [r for r in found if r not in parents]


def check_parent_and_children(where: Path | str, jobs: dict[str, str]) -> tuple[Run, list[Run]]:
    """One FINISHED sweep parent whose FINISHED children ran ``jobs`` (job number -> a swept
    override); the parent and its children."""
    [parent], children = sweep_runs(where)
    assert parent.info.status == "FINISHED", parent.data.tags
    tags = [child.data.tags for child in children]
    assert all(t["mlflow.parentRunId"] == parent.info.run_id for t in tags)
    assert len(tags) == len(jobs)
    assert all(jobs[t["serotiny.job_num"]] in t["serotiny.sweep_job"].split() for t in tags)
    assert all(child.info.status == "FINISHED" for child in children)
    return parent, children


def seed_project(root: Path) -> Path:
    """The seed's layout (.serotiny + package/config), its YAML examples verbatim."""
    config = root / "a_tiny_project" / "config"
    write(root / ".serotiny", "a_tiny_project\n")
    write(root / "setup.py", "from setuptools import setup\nsetup(name='a_tiny_project')\n")
    write(root / "MANIFEST.in", "recursive-include a_tiny_project/config *.yaml\n")
    write(root / "a_tiny_project" / "__init__.py", "")
    write(root / "a_tiny_project" / "callbacks.py", CUSTOM_CALLBACK)
    write(config / "model" / "tabular_vae.yaml", SEED_MODEL)
    write(config / "data" / "cells.yaml", SEED_DATA)
    write(config / "trainer" / "callbacks" / "default.yaml", SEED_CALLBACKS)
    write(config / "trainer" / "default.yaml",
          "_target_: pytorch_lightning.Trainer\naccelerator: cpu\nmax_epochs: 2\n"
          "enable_progress_bar: false\n")
    write(config / "mlflow" / "default.yaml", f"""\
        tracking_uri: sqlite:///{root}/mlflow.db
        experiment_name: tiny
        run_name: ${{hydra:runtime.choices.model}}-latent${{model.latent_dim}}
        """)
    for mode in ("train", "test", "predict"):
        write(config / f"{mode}.yaml", """\
            defaults:
              - data: cells
              - model: tabular_vae
              - trainer: default
              - trainer/callbacks: default
              - mlflow: default
              - _self_
            """)
    manifest(root / "data" / "cells.csv")
    return root


def cookiecutter_project(root: Path) -> Path:
    """A project as the serotiny cookiecutter writes it, inheriting serotiny's defaults tree."""
    config = root / "my_project" / "config"
    write(root / ".serotiny", "my_project")
    write(root / "my_project" / "__init__.py", "")
    for mode in ("train", "test", "predict"):
        write(config / f"{mode}.yaml", f"""\
            defaults:
              - defaults/{mode}@_here_
              - model: default
              - data: default
              - mlflow: default
              - trainer: default
              - hydra@hydra
              - _self_
            """)
    write(config / "trainer" / "default.yaml", """\
        defaults:
          - /defaults/trainer/default@_here_ #inherit serotiny's trainer config
          - callbacks: default

        _target_: pytorch_lightning.Trainer
        max_epochs: 2
        gpus: 0
        enable_checkpointing: True
        enable_progress_bar: false
        """)
    write(config / "trainer" / "callbacks" / "default.yaml", "")
    write(config / "mlflow" / "default.yaml", """\
        defaults:
          - /defaults/mlflow/default@_here_ #inherit serotiny's mlflow config

        #tracking_uri:
        #experiment_name:
        #run_name:
        """)
    write(config / "data" / "default.yaml", """\
        _target_: serotiny.datamodules.ManifestDatamodule
        path: ${project_root:}/manifest.parquet
        batch_size: 32
        num_workers: 0
        loaders:
          x:
            _target_: serotiny.io.dataframe.loaders.LoadColumns
            startswith: feature_
        split_column: split
        """)
    write(config / "model" / "default.yaml", """\
        _target_: serotiny.models.TabularVAE
        x_dim: 20
        latent_dim: 2
        hidden_layers: [16]
        x_label: x
        optimizer:
          _partial_: true
          _target_: torch.optim.Adam
          lr: 1e-2
        """)
    manifest(root / "manifest.parquet", features=20, splits=("Training", "Validation", "TEST"))
    return root


WIDGETS = '''
from serotiny_core import Component, hookimpl


class Widget:
    """A model of a plugin installed as a distribution."""

    def __init__(self, size: int, depth: int = 3, label: str = "w"):
        self.size = size


class Ping:
    def __init__(self, every: int, loud: bool = False):
        self.every = every


@hookimpl
def serotiny_components():
    return [
        Component(kind="model", name="Widget", target="widgets.plugin.Widget",
                  aliases=["widgets.models.Widget"]),
        Component(kind="model", name="Gadget", target="widgets.plugin.Widget"),
        Component(kind="callback", name="Ping", target="widgets.plugin.Ping"),
        Component(kind="model", name="Heavy", target="widgets.heavy.Heavy"),
    ]


@hookimpl
def serotiny_config_dirs():
    return ["pkg://widgets.config"]
'''

# Importing it fails: a listing that imported targets would show it.
HEAVY = 'raise RuntimeError("widgets.heavy was imported")\n'


def widgets(site: Path) -> None:
    """Install serotiny-widgets: components Widget, Gadget (a YAML file too), Ping, Heavy;
    configs model/small_widget and trainer/callbacks/pings."""
    make_plugin(site, "serotiny-widgets", "0.2", "widgets", "widgets.plugin", WIDGETS,
                files={"heavy.py": HEAVY, "config/__init__.py": "",
                       "config/model/Gadget.yaml": "_target_: Gadget\nsize: 5\n",
                       "config/model/small_widget.yaml": "_target_: Widget\nsize: 2\n",
                       "config/trainer/callbacks/pings.yaml": "- _target_: Ping\n  every: 2\n"})
