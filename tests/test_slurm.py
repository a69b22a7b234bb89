"""Sweeps on a real single-node SLURM cluster (tests/slurm_cluster.py): sbatch, srun, scancel.

The cluster keeps no accounting, like many small clusters: sacct fails there,
and the sweep must still notice jobs that end and say nothing about sacct.
Every test skips, with the reason, where the cluster cannot start.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SEROTINY, Result, run_cli
from projects import store_client, sweep_runs, write

pytestmark = pytest.mark.slow

# The packaged launcher with what one small machine has: no GPU, one CPU per task.
ON_THIS_MACHINE = ("hydra/launcher=slurm", "hydra.launcher.partition=debug",
                   "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
                   "hydra.launcher.mem_gb=null", "hydra.launcher.timeout_min=10")
SLOW_CALLBACK = '''\
import time

from pytorch_lightning import Callback


class SleepEachEpoch(Callback):
    """Time to cancel the job between two epochs, once a checkpoint is written."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_epoch_end(self, trainer, pl_module):
        time.sleep(self.seconds)
'''


def sweep_dir(project: Path) -> Path:
    [folder] = (project / "multirun").glob("train/*/*")
    return folder


def epochs_logged(project: Path, run) -> list[int]:
    """The step of every val_loss the run holds: one per epoch, unless epochs were redone."""
    return [m.step for m in store_client(project).get_metric_history(run.info.run_id, "val_loss")]


def assert_no_sacct_noise(result: Result) -> None:
    assert "sacct" not in result.text and "accounting storage is disabled" not in result.text


def test_a_sweep_runs_each_job_through_sbatch_into_a_finished_run_a_child_of_its_parent(project, slurm):
    result = run_cli("train", "-m", *ON_THIS_MACHINE, "model.latent_dim=2,4", "trainer.max_epochs=1",
                     "mlflow.run_name=sweep", cwd=project, env=slurm.env)
    assert result.code == 0, result.text
    assert_no_sacct_noise(result)
    # one SLURM job array, one task per sweep job, each with its log
    logs = sorted((sweep_dir(project) / ".submitit").glob("*_*/*_log.out"))
    assert [log.parent.name.split("_")[1] for log in logs] == ["0", "1"]
    [array] = {log.parent.name.split("_")[0] for log in logs}
    for number, log in enumerate(logs):
        assert f"JobEnvironment(job_id={array}_{number}, hostname=" in log.read_text()
    [parent], children = sweep_runs(project)
    assert sorted(run.info.run_name for run in children) == ["sweep-0", "sweep-1"]
    assert all(run.info.status == "FINISHED" for run in children)
    assert sorted(run.data.params["model/latent_dim"] for run in children) == ["2", "4"]
    assert "multirun summary" in result.out
    # the sweep's parent run: one parent per sweep, one child per job
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert sorted(c.data.tags["serotiny.job_num"] for c in children) == ["0", "1"]


def test_ddp_across_two_slurm_tasks_makes_one_run_with_one_history(project, slurm):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("DDP on two SLURM tasks needs 2 CPUs")
    result = run_cli("train", "-m", *ON_THIS_MACHINE, "hydra.launcher.tasks_per_node=2",
                     "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu",
                     "trainer.max_epochs=2", "mlflow.run_name=ddp", cwd=project, env=slurm.env)
    assert result.code == 0, result.text
    # srun started both ranks: submitit wrote a log per SLURM task, each its own global rank
    logs = sorted((sweep_dir(project) / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, logs
    text = "".join(log.read_text() for log in logs)
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in text and "GLOBAL_RANK: 1, MEMBER: 2/2" in text
    [run] = sweep_runs(project)[1]
    assert run.info.status == "FINISHED" and run.data.params["trainer/strategy"] == "ddp"
    steps = epochs_logged(project, run)
    assert len(steps) == 2 and len(set(steps)) == 2  # each epoch once: only rank 0 logged


SLOW_SWEEP = ("train", "-m", *ON_THIS_MACHINE, "model.latent_dim=2", "trainer.max_epochs=3",
              "trainer/callbacks=slow", "mlflow.run_name=slow")


def slow_project(project: Path) -> Path:
    """The project with a callback that sleeps after each epoch (trainer/callbacks=slow)."""
    write(project / "proj" / "slow.py", SLOW_CALLBACK)
    write(project / "proj" / "config" / "trainer" / "callbacks" / "slow.yaml", """\
        - _target_: ModelCheckpoint
          save_last: true
        - _target_: proj.slow.SleepEachEpoch
          seconds: 3
        """)
    return project


def wait_for(ready, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.5)


def cancel_after_first_checkpoint(project: Path, slurm) -> Result:
    """Start the slow sweep, scancel its job once epoch 1's checkpoint is written; its output."""
    proc = subprocess.Popen([SEROTINY, *SLOW_SWEEP], cwd=project, text=True,
                            env={**os.environ, **slurm.env, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: list(project.glob("multirun/train/*/*/0/checkpoints/*.ckpt")), "checkpoint")
        # This sweep's own job (its folder under .submitit: <job>, or <job>_<task> in an array): other tests'
        # jobs may be queued on the same cluster at the same time (pytest-xdist).
        [job] = {folder.name.split("_")[0] for folder in (sweep_dir(project) / ".submitit").glob("[0-9]*")}
        slurm.command("scancel", job)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return Result(proc.returncode, out, err)


def test_scancel_ends_the_job_its_run_killed_and_the_same_command_resumes_it(project, slurm):
    project = slow_project(project)
    result = cancel_after_first_checkpoint(project, slurm)
    assert result.code != 0, result.text
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.err[-3000:]
    assert "(state: CANCELLED" in errors[0] and "train interrupted; last checkpoint:" in errors[0]
    assert_no_sacct_noise(result)
    [before] = sweep_runs(project)[1]
    assert before.info.status == "KILLED"
    uploaded = [a.path for a in store_client(project).list_artifacts(before.info.run_id, "checkpoints")]
    assert "checkpoints/last.ckpt" in uploaded, uploaded

    # The sweep resume (a sweep's parent run, its jobs' child runs found again by their
    # overrides): the same command again resumes the cancelled job in its own child run.
    again = run_cli(*SLOW_SWEEP, cwd=project, env=slurm.env)
    assert again.code == 0, again.text
    parents, children = sweep_runs(project)
    assert len(parents) == 1 and [c.info.run_id for c in children] == [before.info.run_id]
    [child] = children
    assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert child.info.status == "FINISHED"
    steps = epochs_logged(project, child)
    assert len(steps) == 3 and len(set(steps)) == 3, steps  # resumed, not restarted
