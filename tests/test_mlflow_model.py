"""Every train run holds an MLflow model: loaded elsewhere, registered, served over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from mlflow_server import free_port, wait_healthy
from projects import store_client, store_runs

# A fresh interpreter, outside the project: what a user loading the model elsewhere runs.
LOAD_AND_PREDICT = """
import sys
import mlflow
import pandas as pd

mlflow.set_tracking_uri(sys.argv[1])
rows = pd.read_csv(sys.argv[3])
mlflow.pyfunc.load_model(sys.argv[2]).predict(rows).to_parquet(sys.argv[4])
"""


@pytest.fixture
def small(project: Path) -> Path:
    """The init project with a 60-row manifest: one short epoch per train."""
    manifest = project / "data" / "manifest.csv"
    pd.read_csv(manifest).iloc[:60].to_csv(manifest, index=False)
    return project


def train(project: Path, *overrides: str) -> str:
    """Train one epoch; the id of the run it made."""
    result = run_cli("train", "trainer.max_epochs=1", *overrides, cwd=project)
    assert result.code == 0, result.text
    return store_runs(project)[-1].info.run_id


def artifacts(project: Path, run_id: str, folder: str = "") -> set[str]:
    return {a.path for a in store_client(project).list_artifacts(run_id, folder)}


@pytest.mark.slow
def test_the_model_predicts_what_serotiny_predict_writes_in_a_fresh_process(small, tmp_path):
    run_id = train(small, "mlflow.run_name=alpha")
    assert "model/MLmodel" in artifacts(small, run_id, "model")
    predicted = run_cli("predict", "mlflow.run_name=alpha", cwd=small)
    assert predicted.code == 0, predicted.text
    written = pd.read_parquet(next(small.glob("outputs/predict/**/predictions.parquet")))
    elsewhere, out = tmp_path / "elsewhere", tmp_path / "served.parquet"
    elsewhere.mkdir()
    rows = small / "data" / "manifest.csv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    loaded = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, f"sqlite:///{small}/mlflow.db",
                             f"runs:/{run_id}/model", str(rows), str(out)],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    served = pd.read_parquet(out)
    assert len(served) == len(written) == 60
    pd.testing.assert_frame_equal(served, written)


def test_registered_model_name_adds_a_version_per_run_and_log_model_false_skips(small):
    first = train(small, "mlflow.run_name=alpha", "mlflow.registered_model_name=cells")
    second = train(small, "mlflow.run_name=beta", "mlflow.registered_model_name=cells")
    unlogged = train(small, "mlflow.run_name=gamma", "mlflow.registered_model_name=cells",
                     "mlflow.log_model=false")
    versions = store_client(small).search_model_versions("name='cells'")
    assert {(v.version, v.run_id) for v in versions} == {(1, first), (2, second)}
    assert not artifacts(small, unlogged, "model")


@pytest.mark.slow
def test_a_registered_model_is_served_over_http(small):
    train(small, "mlflow.run_name=alpha", "mlflow.registered_model_name=cells")
    port = free_port()
    mlflow = str(Path(sys.executable).parent / "mlflow")
    # As in an activated environment: MLflow starts the server with the uvicorn on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": f"sqlite:///{small}/mlflow.db"}
    server = subprocess.Popen([mlflow, "models", "serve", "-m", "models:/cells/1", "--env-manager",
                               "local", "-p", str(port), "-h", "127.0.0.1"],
                              cwd=small.parent, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout=60, path="ping")
        rows = pd.read_csv(small / "data" / "manifest.csv").iloc[:4]
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            predictions = json.loads(answer.read())["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    assert [p["sample_id"] for p in predictions] == list(rows["sample_id"])
    assert {"z_mean_0", "z_mean_1"} <= set(predictions[0])


PLAIN_MODEL = '''
import pytorch_lightning as pl
import torch


class Plain(pl.LightningModule):
    """Trains, with no predict_step: nothing to serve."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(16, 1)

    def training_step(self, batch, batch_idx):
        return self.net(batch["x"]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.net(batch["x"]).pow(2).mean(), batch_size=len(batch["x"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)
'''


def test_a_model_without_predict_step_is_skipped_with_one_warning(small):
    (small / "proj" / "plain.py").write_text(PLAIN_MODEL)
    (small / "proj" / "config" / "model" / "plain.yaml").write_text("_target_: proj.plain.Plain\n")
    result = run_cli("train", "model=plain", "trainer.max_epochs=1", "mlflow.run_name=plain", cwd=small)
    assert result.code == 0, result.text
    warned = [line for line in result.text.splitlines() if "MLflow model is skipped" in line]
    assert len(warned) == 1 and "Plain defines no predict_step" in warned[0], result.text
    run = store_runs(small)[-1]
    assert run.info.status == "FINISHED" and not artifacts(small, run.info.run_id, "model")
