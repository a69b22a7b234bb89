"""Nothing leaked, no foreign code run, `--strict` means strict: through the real CLI."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from conftest import run_cli


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
    assert resumed.code != 0 and not marker.exists(), resumed.text
    assert "Traceback" not in resumed.text


def test_strict_accepts_the_builtin_model_in_test_and_predict(project):
    ckpt = trained(project, "plain")
    for command in (("test", f"ckpt_path={ckpt}"), ("test", "mlflow.run_name=plain"),
                    ("predict", f"ckpt_path={ckpt}"), ("predict", "mlflow.run_name=plain")):
        result = run_cli(command[0], "--strict", command[1], cwd=project)
        assert result.code == 0, (command, result.text)
