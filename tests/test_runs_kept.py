"""Nothing lost: test/predict leave train runs as they were, concurrent commands, bad checkpoints.

The real CLI on projects made by ``serotiny init`` and a real SQLite store.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import SEROTINY, run_cli
from projects import manifest, store_client, store_runs

ONE_EPOCH = "trainer.max_epochs=1"
NARROW = ("model.x_dim=7", "data.loaders.x.startswith=feature_1")  # feature_1, feature_10..15


def runs_by_name(project: Path) -> dict:
    """Each run name's newest run."""
    return {run.info.run_name: run for run in store_runs(project)}


def snapshot(project: Path, name: str) -> tuple:
    """What a train run holds: status, end, params, tags, artifact paths."""
    run = runs_by_name(project)[name]
    artifacts = sorted(a.path for folder in ("config", "checkpoints", "predictions")
                       for a in store_client(project).list_artifacts(run.info.run_id, folder))
    return run.info.status, run.info.end_time, run.data.params, run.data.tags, artifacts


def logged_config(project: Path, run, name: str) -> dict:
    path = store_client(project).download_artifacts(run.info.run_id, f"config/{name}", str(project / "got"))
    return yaml.safe_load(Path(path).read_text())


def test_bare_test_and_predict_take_the_latest_finished_train_run(project):
    none_yet = run_cli("test", cwd=project)
    assert none_yet.code == 2 and "Traceback" not in none_yet.text
    [line] = [l for l in none_yet.err.splitlines() if l.startswith("error:")]
    assert "no finished train run" in line and "mlflow.run_name=" in line
    assert run_cli("train", ONE_EPOCH, "mlflow.run_name=older", cwd=project).code == 0
    assert run_cli("train", ONE_EPOCH, cwd=project).code == 0  # the default, timestamped name
    [latest] = [name for name in runs_by_name(project) if name != "older"]
    tested = run_cli("test", cwd=project)
    assert tested.code == 0, tested.text
    assert f"using the most recent finished train run '{latest}'" in tested.text
    predicted = run_cli("predict", cwd=project)
    assert predicted.code == 0, predicted.text
    runs = runs_by_name(project)
    assert runs[f"{latest}-test"].data.tags["mlflow.parentRunId"] == runs[latest].info.run_id
    assert runs[f"{latest}-predict"].info.status == "FINISHED"


def test_test_and_predict_by_run_leave_the_train_run_as_it_was(project):
    trained = run_cli("train", ONE_EPOCH, "mlflow.run_name=narrow", *NARROW, cwd=project)
    assert trained.code == 0, trained.text
    before = snapshot(project, "narrow")
    # the run's model and data (7 features), not the project's (16): no shape error
    tested = run_cli("test", "mlflow.run_name=narrow", cwd=project)
    assert tested.code == 0, tested.text
    failed = run_cli("predict", "mlflow.run_name=narrow", "data.path=/nowhere/cells.csv", cwd=project)
    assert failed.code != 0 and "/nowhere/cells.csv" in failed.err
    predicted = run_cli("predict", "mlflow.run_name=narrow", "data.batch_size=50", cwd=project)
    assert predicted.code == 0, predicted.text
    assert snapshot(project, "narrow") == before
    runs = runs_by_name(project)
    config = logged_config(project, runs["narrow-test"], "test.yaml")
    assert config["model"]["x_dim"] == 7 and config["data"]["loaders"]["x"]["startswith"] == "feature_1"
    assert runs["narrow-predict"].data.params["data/batch_size"] == "50"
    assert runs["narrow-predict"].data.params["model/x_dim"] == "7"


def test_a_run_that_finishes_after_a_resume_has_no_stale_error(project):
    broken = run_cli("train", ONE_EPOCH, "mlflow.run_name=again", "model.optimizer.lr=-1", cwd=project)
    assert broken.code != 0
    assert "serotiny.error" in runs_by_name(project)["again"].data.tags
    fixed = run_cli("train", ONE_EPOCH, "mlflow.run_name=again", cwd=project)
    assert fixed.code == 0, fixed.text
    run = runs_by_name(project)["again"]
    assert run.info.status == "FINISHED" and "serotiny.error" not in run.data.tags


@pytest.mark.slow
def test_two_trains_started_together_on_a_fresh_store(fresh_project):
    project = fresh_project
    assert not (project / "mlflow.db").exists()
    procs = [subprocess.Popen([SEROTINY, "train", ONE_EPOCH, f"mlflow.run_name=twin{i}"], cwd=project,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    runs = runs_by_name(project)  # the store opens
    twins = [runs["twin0"], runs["twin1"]]
    assert [run.info.status for run in twins] == ["FINISHED", "FINISHED"]
    # each job its own folder, each run its own checkpoint in it, even when started in the same second
    folders = [run.data.tags["serotiny.output_dir"] for run in twins]
    assert folders[0] != folders[1]
    for run, folder in zip(twins, folders):
        assert run.data.tags["serotiny.last_checkpoint"] == f"{folder}/checkpoints/last.ckpt"
    tested = run_cli("test", "mlflow.run_name=twin0", cwd=project)
    assert tested.code == 0, tested.text
    assert f"checkpoint path at {folders[0]}/checkpoints/" in tested.text


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def test_a_truncated_checkpoint_is_named_and_the_intact_copy_used(project):
    """In this process, which imported MLflow (as a notebook would): its fluent API ends the
    run that a failing resume reopened, and the run gets its end time back too."""
    assert run_cli("train", ONE_EPOCH, "mlflow.run_name=cut", cwd=project).code == 0
    local = sorted(project.glob("outputs/train/*/*/checkpoints/*.ckpt"))
    for path in local:
        truncate(path)
    before = snapshot(project, "cut")
    tested = run_cli("test", "mlflow.run_name=cut", cwd=project)  # the artifact copy is intact
    assert tested.code == 0, tested.text
    assert any(f"checkpoint {path} is unreadable" in tested.text for path in local), tested.text
    assert snapshot(project, "cut") == before
    resumed = run_cli("train", "trainer.max_epochs=2", "mlflow.run_name=cut", cwd=project)
    assert resumed.code == 0 and "(1 epochs done)" in resumed.text, resumed.text
    before = snapshot(project, "cut")
    for path in (project / "mlartifacts").rglob("*.ckpt"):
        truncate(path)
    for path in project.glob("outputs/train/*/*/checkpoints/*.ckpt"):
        truncate(path)
    for args in (("mlflow.run_name=cut",), (f"ckpt_path={local[-1]}",)):
        failed = run_cli("test", *args, cwd=project)
        assert failed.code == 2 and "Traceback" not in failed.text, failed.text
        [line] = [l for l in failed.err.splitlines() if l.startswith("error:")]
        assert "is unreadable" in line and ".ckpt" in line
    assert snapshot(project, "cut") == before  # nothing new ran: the run is as it was
    debug = run_cli("--debug", "test", f"ckpt_path={local[-1]}", cwd=project)
    assert debug.code == 2 and "Traceback" in debug.text
    resumed = run_cli("train", "trainer.max_epochs=3", "mlflow.run_name=cut", cwd=project)
    assert resumed.code == 2 and "is unreadable" in resumed.err, resumed.text
    assert snapshot(project, "cut") == before


def test_jobs_logging_one_manifest_at_once_all_keep_their_runs(tmp_path):
    """The jobs of a parallel sweep log the same manifest as their dataset at the same moment:
    MLflow's look-up-then-insert of the dataset races, and the loser's insert failed. That used
    to count as a dead store: nothing more was logged and the run stayed RUNNING. (The race
    is run in 4 rounds, each with a manifest new to the store: one round alone may not lose it.)"""
    import threading

    from omegaconf import OmegaConf

    from serotiny_core.tracking.settings import TrackingSettings
    from serotiny_core.tracking.worker import Tracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"

    def log(tracker: Tracker, path: Path, together: threading.Barrier) -> None:
        together.wait()
        tracker.log_manifest(path, "train")
        tracker.end("FINISHED")

    trackers: list[Tracker] = []
    for seed in range(4):
        path = manifest(tmp_path / f"manifest-{seed}.csv", rows=60, features=4, seed=seed)
        round_ = [Tracker(TrackingSettings.from_config(OmegaConf.create({"tracking_uri": uri}), "exp"))
                  for _ in range(8)]
        for tracker in round_:
            tracker.create({})
        together = threading.Barrier(len(round_))
        threads = [threading.Thread(target=log, args=(t, path, together)) for t in round_]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        trackers += round_
    assert [tracker.not_logged for tracker in trackers] == [[]] * len(trackers)
    for run in store_runs(uri, "exp", count=len(trackers)):
        assert run.info.status == "FINISHED" and len(run.inputs.dataset_inputs) == 1
