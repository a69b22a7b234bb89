"""Nothing leaked, no foreign code run, `--strict` means strict: through the real CLI."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from mlflow_server import free_port, mlflow_server
from projects import store_runs


class _Payload:
    """Unpickled, it creates ``marker``: what a malicious checkpoint would do with os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def poison(ckpt: Path, marker: Path) -> None:
    """Rewrite a real checkpoint with a code-running object among its hyper-parameters."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state.setdefault("hyper_parameters", {})["payload"] = _Payload(marker)
    torch.save(state, ckpt, pickle_module=pickle)


def trained(project: Path, name: str, epochs: int = 1) -> Path:
    result = run_cli("train", f"trainer.max_epochs={epochs}", f"mlflow.run_name={name}", cwd=project)
    assert result.code == 0, result.text
    return next(project.glob("outputs/train/*/*/checkpoints/last.ckpt"))


def test_resuming_a_malicious_checkpoint_runs_no_code(project, tmp_path):
    marker = tmp_path / "pwned"
    trained(project, "evil")
    copies = list(project.glob("**/last.ckpt"))  # on disk and the run's artifact
    assert len(copies) == 2
    for ckpt in copies:
        poison(ckpt, marker)
    # already trained its 1 epoch: only the epoch counter is read, in plain mode too
    done = run_cli("train", "trainer.max_epochs=1", "mlflow.run_name=evil", cwd=project)
    assert done.code == 0 and "nothing to do" in done.text, done.text
    assert not marker.exists()
    resumed = run_cli("train", "--strict", "trainer.max_epochs=2", "mlflow.run_name=evil", cwd=project)
    assert resumed.code == 2 and not marker.exists(), resumed.text
    assert "holds pickled objects that could run code" in resumed.err and "Traceback" not in resumed.text


def test_strict_accepts_the_builtin_model_in_test_and_predict(project):
    ckpt = trained(project, "plain")
    for command in (("test", f"ckpt_path={ckpt}"), ("test", "mlflow.run_name=plain"),
                    ("predict", f"ckpt_path={ckpt}"), ("predict", "mlflow.run_name=plain")):
        result = run_cli(command[0], "--strict", command[1], cwd=project)
        assert result.code == 0, (command, result.text)


def files_holding(root: Path, *values: str) -> list[str]:
    """Every file under ``root`` (outputs, the SQLite store, artifacts) that contains a value."""
    wanted = [v.encode() for v in values]
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and any(w in p.read_bytes() for w in wanted)]


def test_secrets_are_recorded_nowhere(project):
    env_secret, typed_secret = "env-secret-4f2a9c", "typed-secret-77b1d0"
    result = run_cli("train", "-m", "trainer.max_epochs=1", "+notes.token=${oc.env:MY_SECRET}",
                     "+notes.from_env=${oc.env:MY_SECRET}", "+notes.derived=x-${notes.from_env}",
                     f"+notes.api_key={typed_secret}", "mlflow.run_name=secretive",
                     cwd=project, env={"MY_SECRET": env_secret})
    assert result.code == 0, result.text
    assert files_holding(project, env_secret, typed_secret) == []
    assert env_secret not in result.text
    parent, run = store_runs(project)
    assert "+notes.api_key=***" in parent.data.tags["serotiny.sweep_overrides"]
    assert run.data.params["notes/from_env"] == "${oc.env:MY_SECRET}"
    assert run.data.params["notes/token"] == run.data.params["notes/api_key"] == "***"
    assert "+notes.api_key=***" in run.data.tags["serotiny.command"]
    assert len([p for p in project.rglob("result.json")]) == 1  # serotiny's files were searched


@pytest.mark.slow
def test_credentials_in_the_tracking_uri_reach_the_server_and_no_file(project, tmp_path):
    password = "pa55-word-c0ffee"
    with mlflow_server(tmp_path / "server") as server:
        uri = server.uri.replace("http://", f"http://alice:{password}@")
        result = run_cli("train", "trainer.max_epochs=1", f"mlflow.tracking_uri={uri}",
                         "mlflow.run_name=authed", cwd=project)
        assert result.code == 0, result.text
        [run] = store_runs(server.uri)
        assert run.info.status == "FINISHED" and "train_loss" in run.data.metrics
        assert run.data.params["mlflow/tracking_uri"] == server.uri.replace("http://", "http://alice:***@")
        down = run_cli("train", f"mlflow.tracking_uri=http://alice:{password}@127.0.0.1:{free_port()}",
                       cwd=project)
    assert down.code == 1 and "cannot reach the MLflow tracking server at http://127.0.0.1:" in down.err
    assert password not in result.text + down.text
    assert files_holding(project, password) == [] and files_holding(tmp_path / "server", password) == []
