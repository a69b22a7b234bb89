"""Plugins on either Lightning namespace, the user's own loggers, MLflow's fluent API in a job."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning

from conftest import make_plugin, run_cli
from projects import git, store_client, store_runs

# A plugin as Lightning's own docs write one: on the unified ``lightning`` package.
LIGHTNING_PLUGIN = '''
import json
from pathlib import Path

import lightning.pytorch as L
import torch

from serotiny_core import Component, hookimpl


class LitRegressor(L.LightningModule):
    def __init__(self, x_dim: int, x_label: str = "x", lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(x_dim, 1)

    def _loss(self, batch, name):
        loss = self.net(batch[self.hparams.x_label]).pow(2).mean()
        self.log(name, loss, batch_size=len(batch[self.hparams.x_label]))
        return loss

    def training_step(self, batch, batch_idx):
        return self._loss(batch, "train_loss")

    def validation_step(self, batch, batch_idx):
        self._loss(batch, "val_loss")

    def test_step(self, batch, batch_idx):
        self._loss(batch, "test_loss")

    def predict_step(self, batch, batch_idx):
        return {"score": self.net(batch[self.hparams.x_label])}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Epochs(L.Callback):
    """Counts the epochs it saw, and whether the job imported MLflow, in the run's folder."""

    def on_train_epoch_end(self, trainer, pl_module):
        import sys

        seen = {"epochs": trainer.current_epoch + 1, "mlflow_imported": "mlflow" in sys.modules}
        Path(trainer.default_root_dir, "epochs.json").write_text(json.dumps(seen))


@hookimpl
def serotiny_components():
    return [Component(kind="model", name="LitRegressor", target="litplug.models.LitRegressor"),
            Component(kind="callback", name="Epochs", target="litplug.models.Epochs")]
'''

# A callback using MLflow's fluent API, as plugins written for plain MLflow do.
FLUENT_PLUGIN = '''
import json
from pathlib import Path

import pytorch_lightning as pl

from serotiny_core import Component, hookimpl


class Fluent(pl.Callback):
    def __init__(self, fail: bool = False):
        self.fail = fail

    def on_train_epoch_end(self, trainer, pl_module):
        import mlflow

        note = Path(trainer.default_root_dir, "fluent.json")
        note.write_text(json.dumps({"run_id": mlflow.active_run().info.run_id}))
        mlflow.log_metric("fluent_metric", 1.5, step=trainer.current_epoch)
        mlflow.log_artifact(str(note), "fluent")
        if self.fail:
            raise RuntimeError("the callback gave up")


@hookimpl
def serotiny_components():
    return [Component(kind="callback", name="Fluent", target="fluentplug.callbacks.Fluent")]
'''

LIT_CALLBACKS = """\
- _target_: pytorch_lightning.callbacks.EarlyStopping
  monitor: val_loss
  patience: 3
- _target_: Epochs
"""


def the_run(project: Path, run_name: str | None = None) -> object:
    runs = store_runs(project, "proj")  # the package name of 'serotiny init proj'
    return next(r for r in runs if run_name is None or r.info.run_name == run_name)


def lightning_project(project: Path, site: Path, extra: str = "") -> None:
    make_plugin(site, "serotiny-litplug", "0.1", "litplug", "litplug.models", LIGHTNING_PLUGIN + extra)
    config = project / "proj" / "config"
    (config / "model" / "lit.yaml").write_text("_target_: LitRegressor\nx_dim: 16\n")
    (config / "trainer" / "callbacks" / "lit.yaml").write_text(LIT_CALLBACKS)


@pytest.mark.slow
def test_plugin_on_lightning_pytorch_trains_tests_and_predicts(project, site, site_env):
    lightning_project(project, site)
    # The project's trainer names pytorch_lightning.Trainer; the model decides.
    # In a process of its own: what the job's process imported is checked.
    trained = run_cli("train", "model=lit", "trainer/callbacks=lit", "trainer.max_epochs=2",
                      "mlflow.run_name=lit", cwd=project, env=site_env, subprocess=True)
    assert trained.code == 0, trained.text
    [folder] = (project / "outputs" / "train").glob("*/*")
    # A lightning.pytorch callback ran; the job process never imported MLflow (its start-up time).
    assert json.loads((folder / "epochs.json").read_text()) == {"epochs": 2, "mlflow_imported": False}
    assert (folder / "checkpoints" / "last.ckpt").is_file()
    run = the_run(project, "lit")
    assert run.info.status == "FINISHED" and "val_loss" in run.data.metrics

    tested = run_cli("test", "mlflow.run_name=lit", cwd=project, env=site_env)
    assert tested.code == 0, tested.text
    tested_run = the_run(project, "lit-test")  # a child of the train run (see docs/mlflow.md)
    assert "test_loss" in tested_run.data.metrics
    assert tested_run.data.tags["mlflow.parentRunId"] == run.info.run_id
    predicted = run_cli("predict", "mlflow.run_name=lit", cwd=project, env=site_env)
    assert predicted.code == 0, predicted.text
    [written] = (project / "outputs" / "predict").glob("*/*/predictions/predictions.parquet")
    frame = pd.read_parquet(written)
    assert len(frame) == len(pd.read_csv(project / "data" / "manifest.csv"))
    assert {"sample_id", "score"} <= set(frame.columns)


def test_a_callback_of_the_other_namespace_that_cannot_work_is_one_line(project, site, site_env):
    lightning_project(project, site, extra='''
import pytorch_lightning


class OldCheckpoint(pytorch_lightning.callbacks.ModelCheckpoint):
    pass
''')
    result = run_cli("train", "model=lit", "+trainer.callbacks=[{_target_:litplug.models.OldCheckpoint}]",
                     cwd=project, env=site_env)
    assert result.code == 2, result.text
    assert ("callback OldCheckpoint is a pytorch_lightning Checkpoint but the model is a "
            "lightning.pytorch LightningModule") in result.err
    assert "Traceback" not in result.text


def test_trainer_logger_and_mlflow_fluent_api_write_to_the_job(project, site, site_env):
    """A PL model under ``lightning.Trainer``; a CSVLogger beside MLflow; ``mlflow.log_metric``."""
    make_plugin(site, "serotiny-fluentplug", "0.1", "fluentplug", "fluentplug.callbacks", FLUENT_PLUGIN)
    result = run_cli("train", "trainer._target_=lightning.Trainer", "trainer.max_epochs=2",
                     "+trainer.callbacks=[{_target_:Fluent}]",
                     "+trainer.logger={_target_:lightning.pytorch.loggers.CSVLogger,"
                     "save_dir:${hydra:runtime.output_dir},name:csv}",
                     cwd=project, env=site_env)
    assert result.code == 0, result.text
    [folder] = (project / "outputs" / "train").glob("*/*")
    [metrics] = folder.glob("csv/version_0/metrics.csv")
    assert "val_loss" in pd.read_csv(metrics).columns
    run = the_run(project)
    assert run.info.status == "FINISHED"
    client = store_client(project)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "fluent_metric")] == [1.5, 1.5]
    assert (folder / "fluent.json").read_text() == f'{{"run_id": "{run.info.run_id}"}}'
    assert [a.path for a in client.list_artifacts(run.info.run_id, "fluent")] == ["fluent/fluent.json"]
    assert len(store_runs(project)) == 1  # no run of its own


def test_fluent_api_writes_to_the_job_though_the_process_pinned_another_store(
        project, site, site_env, tmp_path, monkeypatch):
    """A notebook that used MLflow (or Lightning's MLFlowLogger) pinned its tracking URI with
    ``mlflow.set_tracking_uri``: the job's fluent calls still reach the job's run, and the
    notebook's URI is back afterwards."""
    import mlflow

    make_plugin(site, "serotiny-fluentplug", "0.1", "fluentplug", "fluentplug.callbacks", FLUENT_PLUGIN)
    notebook = f"sqlite:///{tmp_path / 'notebook.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", notebook)  # set_tracking_uri sets it: put back after
    mlflow.set_tracking_uri(notebook)
    try:
        result = run_cli("train", "trainer.max_epochs=1", "+trainer.callbacks=[{_target_:Fluent}]",
                         cwd=project, env=site_env)
        assert mlflow.get_tracking_uri() == notebook
    finally:
        mlflow.set_tracking_uri(None)
    assert result.code == 0, result.text
    run = the_run(project)
    assert run.info.status == "FINISHED" and run.data.metrics["fluent_metric"] == 1.5


def test_a_failed_job_stays_failed_when_its_code_used_mlflow(project, site, site_env):
    """MLflow's own exit handler would mark the run FINISHED; serotiny's status wins."""
    make_plugin(site, "serotiny-fluentplug", "0.1", "fluentplug", "fluentplug.callbacks", FLUENT_PLUGIN)
    result = run_cli("train", "trainer.max_epochs=1", "+trainer.callbacks=[{_target_:Fluent,fail:true}]",
                     cwd=project, env=site_env)
    assert result.code == 1 and "the callback gave up" in result.err
    run = the_run(project)
    assert run.info.status == "FAILED" and "gave up" in run.data.tags["serotiny.error"]
    assert run.data.metrics["fluent_metric"] == 1.5


def test_runs_carry_mlflow_context_the_manifest_and_the_model_summary(project):
    """In a git worktree with a changed file: MLflow's context tags, a dataset input, a summary."""
    git("init", "-q", cwd=project)
    git("add", "-A", cwd=project)
    git("commit", "-qm", "project", cwd=project)
    worktree = project.parent / "wt"
    git("worktree", "add", "-q", str(worktree), cwd=project)
    with (worktree / "README.md").open("a") as readme:
        readme.write("changed\n")
    result = run_cli("train", "trainer.max_epochs=1", cwd=worktree)
    assert result.code == 0, result.text
    run = the_run(worktree)
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == git("rev-parse", "HEAD", cwd=worktree)
    assert tags["mlflow.source.git.dirty"] == "true"
    assert tags["mlflow.user"] == getpass.getuser() and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] == str(worktree)
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.name == "manifest.csv" and dataset.dataset.digest
    assert dataset.dataset.source_type == "local"
    assert [(t.key, t.value) for t in dataset.tags] == [("mlflow.data.context", "train")]
    client = store_client(worktree)
    summary = Path(client.download_artifacts(run.info.run_id, "model_summary.txt", str(worktree)))
    assert "Total params" in summary.read_text()


def test_every_declared_dependency_is_imported_by_the_code():
    """A dependency nobody imports is weight on every install; each must earn its place."""
    import re
    import tomllib
    from importlib.metadata import packages_distributions

    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[1]
    declared = [Requirement(spec) for spec in
                tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]]
    names = {r.name.lower().replace("_", "-") for r in declared if r.marker is None or r.marker.evaluate()}
    source = "\n".join(p.read_text() for folder in ("serotiny_core", "serotiny_plugins")
                       for p in (root / folder).rglob("*.py"))
    imported = set(re.findall(r"^\s*(?:import|from)\s+(\w+)", source, flags=re.MULTILINE))
    distributions = packages_distributions()  # reads every installed package's file list: once
    provided = {dist.lower().replace("_", "-") for module in imported
                for dist in distributions.get(module, [])}
    assert names - provided == set()


class OldStyleData(pytorch_lightning.LightningDataModule):
    """A datamodule on pytorch_lightning, as the built-in ManifestDatamodule is."""

    def train_dataloader(self):
        return [1, 2]

    def identifiers(self, split):
        return split


def test_helpers_take_the_trainers_namespace_and_survive_pickling():
    """What a spawned DDP rank receives: serotiny's helpers and a bridged datamodule, by pickle."""
    import pickle

    import lightning.pytorch as L
    from lightning.pytorch.utilities.model_helpers import is_overridden

    from serotiny_core import lightning_ns
    from serotiny_core.guards import FirstBatchRecorder

    recorder = lightning_ns.adopt(FirstBatchRecorder(), "Callback", lightning_ns.LIGHTNING)
    recorder.shapes = "x: [2, 3] float32"
    copy = pickle.loads(pickle.dumps(recorder))
    assert isinstance(copy, L.Callback) and isinstance(copy, FirstBatchRecorder)
    assert copy.shapes == recorder.shapes
    bridge = pickle.loads(pickle.dumps(lightning_ns.bridge_datamodule(OldStyleData(), lightning_ns.LIGHTNING)))
    assert isinstance(bridge, L.LightningDataModule)
    assert is_overridden("train_dataloader", bridge) and not is_overridden("val_dataloader", bridge)
    assert bridge.train_dataloader() == [1, 2] and bridge.identifiers("predict") == "predict"


def test_trainer_logger_shapes_and_false_means_none(tmp_path):
    """One spec, a list or a name -> spec mapping adds loggers; false, true or nothing adds none."""
    from omegaconf import OmegaConf

    from serotiny_core.assembly import _loggers

    csv = {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": str(tmp_path)}
    for node, count in ((csv, 1), ([csv, csv], 2), ({"csv": csv, "off": None}, 1)):
        made = _loggers(OmegaConf.create(node))
        assert [type(logger).__name__ for logger in made] == ["CSVLogger"] * count
    assert _loggers(False) == _loggers(True) == _loggers(None) == []
