"""Ctrl-C on a sweep: always exit 130, the running job's run KILLED, no further job."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import SEROTINY


def runs_by_status(project) -> dict[str, str]:
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("proj")
    if experiment is None:
        return {}
    return {r.info.run_name: r.info.status for r in client.search_runs([experiment.experiment_id])}


# Moments after job 0's "Trainer.fit" begins: as its DataLoader workers fork (where a
# Ctrl-C used to be swallowed by logging's at-fork hook), and a little later, mid-epoch.
@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3, 1.5])
def test_ctrl_c_on_a_sweep_stops_it(project, delay):
    command = [SEROTINY, "train", "-m", "model.latent_dim=2,3,4", "mlflow.run_name=swept",
               "trainer.max_epochs=30", "data.batch_size=4", "data.num_workers=2",
               "trainer.callbacks=[]"]
    proc = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Total FLOPs" in line or "Total params" in line:
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    text = "".join(lines) + out
    assert proc.returncode == 130, text[-3000:]
    assert runs_by_status(project) == {"swept-0": "KILLED"}, text[-3000:]
    assert "#1 :" not in text
