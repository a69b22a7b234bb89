"""Ctrl-C on a sweep: always exit 130, the running job's run and the sweep's parent KILLED,
no further job; the same command again resumes the sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import SEROTINY
from projects import manifest, store_client


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
    # the running job's run and the sweep's parent run
    assert runs_by_status(project) == {"swept": "KILLED", "swept-0": "KILLED"}, text[-3000:]
    assert "#1 :" not in text


STOP_ONCE = '''

class StopOnce(Callback):
    """Ctrl-C at the start of job 1's second epoch, once: while the file ``flag`` exists."""

    def __init__(self, flag: str):
        self.flag = flag

    def on_train_epoch_start(self, trainer, pl_module):
        import os
        import signal
        from pathlib import Path

        from hydra.core.hydra_config import HydraConfig

        if trainer.current_epoch == 1 and HydraConfig.get().job.num == 1 and Path(self.flag).exists():
            Path(self.flag).unlink()
            os.kill(os.getpid(), signal.SIGINT)
'''


def sweep_children(project) -> list:
    client = store_client(project)
    experiment = client.get_experiment_by_name("proj")
    return client.search_runs([experiment.experiment_id], "tags.`serotiny.mode` = 'train'",
                              order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_a_sweep_stopped_mid_job_resumes_that_job_in_its_own_run(project):
    manifest(project / "data" / "manifest.csv", rows=60, features=16)
    with (project / "proj" / "callbacks.py").open("a") as module:
        module.write(STOP_ONCE)
    (project / "proj" / "config" / "trainer" / "callbacks" / "stop.yaml").write_text(
        "- _target_: proj.callbacks.StopOnce\n  flag: ${project_root:}/stop\n")
    (project / "stop").touch()
    command = [SEROTINY, "train", "-m", "model.latent_dim=2,3,4", "trainer.max_epochs=2",
               "trainer/callbacks=stop"]
    first = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600)
    assert first.returncode == 130, first.stderr[-3000:]
    assert runs_by_status(project) == {"sweep": "KILLED", **{
        r.info.run_name: s for r, s in zip(sweep_children(project), ["FINISHED", "KILLED"])}}

    again = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    children = sweep_children(project)
    assert [r.data.tags["serotiny.job_num"] for r in children] == ["0", "1", "2"]  # no second run
    assert set(runs_by_status(project).values()) == {"FINISHED"}  # the parent too
    client = store_client(project)
    for child in children:  # every epoch logged once: job 1's first, then its second
        for key in ("train_loss", "val_loss"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert len(steps) == 2 and len(set(steps)) == 2, (child.info.run_name, key, steps)
    assert "finished already" in again.stderr + again.stdout
    assert "resuming from" in again.stderr + again.stdout
