"""MLflow tracking for real: a SQLite store, a real `mlflow server`, resume, faults."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import shutil
import socket
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import SEROTINY, init_project, run_cli
from mlflow_server import free_port, mlflow_server
from projects import git, store_client, store_runs
from serotiny_core.tracking import TrackingSettings, embedded_store, remote
from serotiny_core.tracking.worker import serve_command


def only_run(where: Path | str, experiment: str = "proj", count: int = 1):
    """The experiment's newest run, checking it has ``count`` runs in all."""
    return store_runs(where, experiment, count)[-1]


def wait_for(pattern: str, root: Path, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(root.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.2)
    raise TimeoutError(pattern)


def test_train_then_test_and_predict_by_run_name(project):
    assert run_cli("train", "trainer.max_epochs=2", "mlflow.run_name=alpha", cwd=project).code == 0
    shutil.rmtree(project / "outputs")  # the checkpoint must come from the run's artifacts
    tested = run_cli("test", "mlflow.run_name=alpha", cwd=project)
    assert tested.code == 0, tested.text
    predicted = run_cli("predict", "mlflow.run_name=alpha", "data.batch_size=50", cwd=project)
    assert predicted.code == 0, predicted.text
    client = store_client(project)
    runs = {r.info.run_name: r for r in store_runs(project, count=3)}
    train, test, predict = runs["alpha"], runs["alpha-test"], runs["alpha-predict"]
    assert train.info.status == test.info.status == predict.info.status == "FINISHED"
    assert test.data.tags["mlflow.parentRunId"] == predict.data.tags["mlflow.parentRunId"] == train.info.run_id
    assert "test_loss" in test.data.metrics and "test_loss" not in train.data.metrics
    names = {a.path for a in client.list_artifacts(predict.info.run_id, "predictions")}
    assert names == {"predictions/predictions.parquet"}
    assert {a.path for a in client.list_artifacts(train.info.run_id, "config")} == {"config/train.yaml"}
    assert predict.data.params["data/batch_size"] == "50"
    experiment = client.get_experiment_by_name("proj")
    assert experiment.artifact_location == (project / "mlartifacts").as_uri()  # beside mlflow.db
    assert list((project / "mlartifacts").rglob("predictions.parquet"))


def test_test_of_an_unknown_run_is_one_clear_line(project):
    result = run_cli("test", "mlflow.run_name=nope", cwd=project)
    assert result.code == 2
    assert "no MLflow train run named 'nope'" in result.err and "Traceback" not in result.text


def test_tracking_off_keeps_checkpoints_on_disk(fresh_project):
    project = fresh_project
    result = run_cli("train", "trainer.max_epochs=1", "mlflow.tracking_uri=null", cwd=project)
    assert result.code == 0, result.text
    assert not (project / "mlflow.db").exists()
    assert list(project.glob("outputs/train/*/*/checkpoints/last.ckpt"))


@pytest.mark.slow
def test_sigint_then_the_same_command_resumes_the_same_run(project):
    # batch_size=4: about a second an epoch, slow enough to interrupt mid-training
    command = [SEROTINY, "train", "trainer.max_epochs=6", "mlflow.run_name=long", "data.batch_size=4",
               "trainer.callbacks=[]", "+trainer.enable_progress_bar=false"]
    proc = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    wait_for("outputs/train/*/*/checkpoints/last.ckpt", project)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out, out
    client = store_client(project)
    killed = only_run(project)
    assert killed.info.status == "KILLED"
    logged_before = len(client.get_metric_history(killed.info.run_id, "train_loss"))
    resumed = run_cli(*command[1:], cwd=project)
    assert resumed.code == 0, resumed.text
    done = int(re.search(r"resuming from .* \((\d+) epochs done\)", resumed.text).group(1))
    # Lightning writes an epoch's checkpoint at validation end, before it logs the epoch's
    # train_loss: a Ctrl-C in between leaves that one epoch checkpointed but not logged.
    assert logged_before in (done - 1, done) and done < 6
    run = only_run(project)
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    epochs = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert len(epochs) == logged_before + 6 - done and len(set(epochs)) == len(epochs)
    again = run_cli(*command[1:], cwd=project)
    assert again.code == 0 and "nothing to do" in again.text


@pytest.mark.slow
def test_sigterm_marks_the_run_killed(project):
    proc = subprocess.Popen([SEROTINY, "train", "trainer.max_epochs=50", "mlflow.run_name=term",
                             "data.batch_size=4"],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for("outputs/train/*/*/checkpoints/last.ckpt", project)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    run = only_run(project)
    assert run.info.status == "KILLED"
    assert {"checkpoints/last.ckpt"} <= {a.path for a in store_client(project).list_artifacts(run.info.run_id, "checkpoints")}


def ended_run(project: Path, name: str):
    """The run of that name once the MLflow process has ended it (it notices a killed command)."""
    deadline = time.monotonic() + 60
    while True:
        run = next(run for run in store_runs(project) if run.info.run_name == name)
        if run.info.status != "RUNNING" or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def killed(*args: str, project: Path, once: str) -> None:
    """``serotiny ARGS`` in a process of its own, killed with SIGKILL once ``once`` exists."""
    proc = subprocess.Popen([SEROTINY, *args, "data.batch_size=4"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(once, project)
    proc.kill()  # no handler in the command runs
    proc.wait()


@pytest.mark.slow
def test_a_killed_command_leaves_its_run_killed_not_running(project):
    killed("train", "trainer.max_epochs=50", "mlflow.run_name=gone", project=project,
           once="outputs/train/*/*/checkpoints/last.ckpt")
    run = ended_run(project, "gone")
    assert run.info.status == "KILLED"
    assert "ended without closing" in run.data.tags["serotiny.error"]


def test_a_command_killed_while_its_requests_wait_leaves_its_run_killed(tmp_path, empty_store):
    """The MLflow process may be behind the command when the command is killed: the reply
    to a request still waiting then has nowhere to go, and the run must still end KILLED
    (the MLflow process's own loop, on real channels and a real store)."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    settings = TrackingSettings.from_config(OmegaConf.create(embedded_store(tmp_path)), "proj")
    ours, theirs = socket.socketpair()
    replies_in, replies_out = os.pipe()
    requests = Connection(ours.detach(), readable=False)
    requests.send((1, "create", ({},), {}))
    requests.send((2, "log_metrics", ({"loss": 1.0}, 0), {}))
    requests.close()  # the command is gone,
    os.close(replies_in)  # and nothing reads its replies
    saved = dict(os.environ)
    try:
        done = serve_command(remote.Handover(os.getcwd(), saved, settings),
                             Connection(theirs.detach(), writable=False),
                             Connection(replies_out, readable=False))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert done is False
    [run] = store_runs(tmp_path)
    assert run.info.status == "KILLED"


@pytest.mark.slow
def test_a_sweep_killed_in_its_second_job_leaves_that_run_killed(project):
    """The MLflow process that served the first job serves the second: killed then, it ends
    the second job's run, and the first stays FINISHED."""
    killed("train", "-m", "trainer.max_epochs=1,50", "mlflow.run_name=gone", project=project,
           once="multirun/train/*/*/1/checkpoints/last.ckpt")
    assert ended_run(project, "gone-0").info.status == "FINISHED"
    second = ended_run(project, "gone-1")
    assert second.info.status == "KILLED"
    assert "ended without closing" in second.data.tags["serotiny.error"]


@pytest.mark.slow
def test_real_server_records_params_tags_metrics_artifacts(project, tmp_path):
    with mlflow_server(tmp_path) as server:
        result = run_cli("train", "trainer.max_epochs=2", f"mlflow.tracking_uri={server.uri}",
                         "mlflow.run_name=served", "+mlflow.tags.team=cells", cwd=project)
        assert result.code == 0, result.text
        client = store_client(server.uri)
        run = only_run(server.uri)
        assert run.info.status == "FINISHED"
        assert run.data.params["model/hidden_layers"] == "[32, 32]"
        assert run.data.tags["team"] == "cells"
        assert "serotiny.version" in run.data.tags
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
        paths = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        assert "checkpoints/last.ckpt" in paths
        assert {a.path for a in client.list_artifacts(run.info.run_id, "config")} == {"config/train.yaml"}
        # Artifacts went to the server's store, not to a folder of the client's.
        assert client.get_experiment_by_name("proj").artifact_location.startswith("mlflow-artifacts:")
        assert list((tmp_path / "server-artifacts").rglob("last.ckpt"))
        assert not (project / "mlartifacts").exists()
        # An experiment made elsewhere with a client's folder: trained into, with one warning.
        client.create_experiment("old", artifact_location=(tmp_path / "elsewhere").as_uri())
        old = run_cli("train", "trainer.max_epochs=1", f"mlflow.tracking_uri={server.uri}",
                      "mlflow.experiment_name=old", cwd=project)
        assert old.code == 0, old.text
        [warning] = [line for line in old.text.splitlines() if "keeps its artifacts in" in line]
        assert f"experiment 'old' keeps its artifacts in {(tmp_path / 'elsewhere').as_uri()}" in warning


def test_server_down_at_start_fails_fast_with_the_uri(project):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_cli("train", f"mlflow.tracking_uri={uri}", cwd=project)
    assert time.monotonic() - started < 30
    assert result.code == 1
    [line] = [l for l in result.err.splitlines() if l.startswith("error:")]
    assert uri in line and "Traceback" not in result.text


@pytest.mark.slow
def test_server_killed_mid_training_does_not_stop_training(project, tmp_path):
    with mlflow_server(tmp_path) as server:
        proc = subprocess.Popen([SEROTINY, "train", "trainer.max_epochs=8", "trainer.callbacks=[]",
                                 "data.batch_size=8",
                                 f"mlflow.tracking_uri={server.uri}", "mlflow.run_name=gone"],
                                cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for("outputs/train/*/*/checkpoints/last.ckpt", project)
        server.stop()
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "did not record" in out
    ckpt = next(project.glob("outputs/train/*/*/checkpoints/last.ckpt"))
    import torch

    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 7


WORKER_PROBE = '''\
"""Writes the MLflow processes (serotiny_core.tracking.worker) the job's process has, at its fit's start."""

import os
from pathlib import Path

from pytorch_lightning import Callback


def tracking_workers():
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and b"serotiny_core.tracking.worker" in command:
            found.append(int(stat.parent.name))
    return sorted(found)


class WorkerProbe(Callback):
    def on_train_start(self, trainer, pl_module):
        with open(os.environ["WORKER_PROBE"], "a") as out:
            out.write(" ".join(map(str, tracking_workers())) + "\\n")
'''


def test_the_jobs_of_a_sweep_share_one_mlflow_process(project, tmp_path):
    """Hydra's basic launcher runs the jobs in the command's process: one MLflow process,
    started before the first job, serves each job in turn (MLflow imported once, not per job)."""
    (project / "proj" / "probe.py").write_text(WORKER_PROBE)
    (project / "proj" / "config" / "trainer" / "callbacks" / "probe.yaml").write_text(
        "- _target_: proj.probe.WorkerProbe\n")
    probe = tmp_path / "workers.txt"
    result = run_cli("train", "-m", "model.latent_dim=2,3", "trainer.max_epochs=1",
                     "trainer/callbacks=probe", cwd=project, env={"WORKER_PROBE": str(probe)})
    assert result.code == 0, result.text
    first, second = [set(line.split()) for line in probe.read_text().splitlines()]
    assert len(first) == 1, first
    assert first == second
    runs = store_runs(project, count=3)
    assert {r.info.status for r in runs} == {"FINISHED"}  # two jobs and the sweep's parent


def test_a_kept_mlflow_process_serves_the_next_command_as_its_own(tmp_path, empty_store):
    """The MLflow process of a command serves the next command of the same process (a
    notebook's, a test's) as that command's own: its store, its project's git commit, its
    environment (the user MLflow records comes from it)."""
    probe = tmp_path / "workers.txt"
    projects = []
    for name in ("first", "second"):
        project = init_project(tmp_path / name, empty_store)
        (project / "proj" / "probe.py").write_text(WORKER_PROBE)
        (project / "proj" / "config" / "trainer" / "callbacks" / "probe.yaml").write_text(
            "- _target_: proj.probe.WorkerProbe\n")
        git("init", "-q", cwd=project)
        git("add", "-A", cwd=project)
        git("commit", "-qm", name, cwd=project)
        result = run_cli("train", "trainer.max_epochs=1", "trainer/callbacks=probe", cwd=project,
                         env={"WORKER_PROBE": str(probe), "LOGNAME": f"{name}-user"})
        assert result.code == 0, result.text
        projects.append((name, project))
    first, second = [set(line.split()) for line in probe.read_text().splitlines()]
    assert len(first) == 1 and first == second, (first, second)
    for name, project in projects:
        tags = only_run(project).data.tags
        assert tags["mlflow.source.git.commit"] == git("rev-parse", "HEAD", cwd=project)
        assert tags["mlflow.user"] == f"{name}-user"


@pytest.mark.slow
def test_a_command_whose_kept_mlflow_process_was_killed_starts_another(project):
    """kill -9 of the MLflow process while it waits for the next command: that command
    starts a new one and tracks as usual."""
    probe: dict = {}
    exec(WORKER_PROBE, probe)  # noqa: S102 - the probe's own way of finding the processes
    assert run_cli("train", "trainer.max_epochs=1", cwd=project).code == 0
    [kept] = probe["tracking_workers"]()
    os.kill(kept, signal.SIGKILL)
    result = run_cli("train", "trainer.max_epochs=1", "mlflow.run_name=after", cwd=project)
    assert result.code == 0, result.text
    assert "MLflow process ended" not in result.text
    assert store_runs(project, count=2)[-1].info.status == "FINISHED"
    assert probe["tracking_workers"]() not in ([], [kept])
