"""Ctrl-C on a sweep: always exit 130, the running job's run KILLED, no further job."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import SEROTINY
from projects import store_client


def runs_by_status(project) -> dict[str, str]:
    client = store_client(project)
    experiment = client.get_experiment_by_name("proj")
    if experiment is None:
        return {}
    return {r.info.run_name: r.info.status for r in client.search_runs([experiment.experiment_id])}


# Moments after job 0's "Trainer.fit" begins. Each epoch is one batch, so the job spends most
# of its time starting DataLoader workers, where a Ctrl-C used to be lost: raised inside
# logging's at-fork hook, which ignores it, or ending the workers, which failed the run.
@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3, 1.5])
def test_ctrl_c_on_a_sweep_stops_it(project, delay):
    command = [SEROTINY, "train", "-m", "model.latent_dim=2,3,4", "mlflow.run_name=swept",
               "trainer.max_epochs=2000", "data.batch_size=1000", "data.num_workers=4",
               "trainer.callbacks=[]"]
    # a session of its own: Ctrl-C in a terminal reaches the whole process group
    proc = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Total FLOPs" in line or "Total params" in line:
            break
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    text = "".join(lines) + out
    assert proc.returncode == 130, text[-3000:]
    assert runs_by_status(project) == {"swept-0": "KILLED"}, text[-3000:]
    assert "#1 :" not in text
