"""A train sweep is one MLflow parent run with a child run per job, and a re-run resumes it.

The real CLI on a real SQLite store. Interrupting and resuming a sweep is
in tests/test_interrupt_sweep.py (it needs signals, so subprocesses); the parent and
children of a joblib and of a submitit sweep in tests/test_joblib.py and tests/test_scale.py.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from conftest import init_project, run_cli
from projects import all_runs, check_parent_and_children, manifest, store_client, sweep_runs

ONE_EPOCH = ("trainer.max_epochs=1", "trainer.callbacks=[]")


@pytest.fixture
def small(project: Path) -> Path:
    """``serotiny init``'s project on a 60-row manifest."""
    manifest(project / "data" / "manifest.csv", rows=60, features=16)
    return project


def store_state(project: Path) -> dict:
    """Everything a command could change: each run's status, end, tags, params, metric history
    and artifacts."""
    client = store_client(project)
    return {run.info.run_id: (run.info.status, run.info.end_time, run.data.tags, run.data.params,
                              {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                               for key in run.data.metrics},
                              sorted(a.path for a in client.list_artifacts(run.info.run_id)))
            for run in all_runs(project)}


@pytest.mark.slow
def test_a_sweep_is_a_parent_run_and_a_rerun_changes_nothing_unless_fresh(small):
    command = ("train", "-m", "model.latent_dim=3,4", *ONE_EPOCH, "mlflow.run_name=grid")
    result = run_cli(*command, cwd=small)
    assert result.code == 0, result.text
    parent, children = check_parent_and_children(
        small, {"0": "model.latent_dim=3", "1": "model.latent_dim=4"})
    assert parent.info.run_name == "grid"
    assert sorted(child.info.run_name for child in children) == ["grid-0", "grid-1"]
    assert parent.data.tags["serotiny.sweep_overrides"] == (
        "mlflow.run_name=grid model.latent_dim=3,4 trainer.callbacks=[] trainer.max_epochs=1")
    losses = [child.data.metrics["val_loss"] for child in children]
    assert parent.data.metrics["best_val_loss"] == pytest.approx(min(losses))
    client = store_client(small)
    folder = client.download_artifacts(parent.info.run_id, "", str(small / "parent"))
    rows = list(csv.reader(io.StringIO(Path(folder, "summary.csv").read_text())))
    assert rows[0] == ["job", "overrides", "val_loss", "run id"]
    assert sorted(row[3] for row in rows[1:]) == sorted(child.info.run_id for child in children)
    assert "| job | overrides | val_loss | run id |" in Path(folder, "summary.md").read_text()
    assert "latent_dim: 2" in Path(folder, "config", "train.yaml").read_text()  # the unswept config

    before = store_state(small)
    again = run_cli(*command, cwd=small)
    assert again.code == 0, again.text
    assert again.text.count("finished already") == 2
    assert store_state(small) == before
    table = again.out[again.out.index("multirun summary"):].splitlines()
    for child in children:  # the summary still lists every job, with its recorded value
        row = next(line for line in table if child.info.run_id in line)
        assert f"{child.data.metrics['val_loss']:.6g}" in row

    fresh = run_cli(*command, "fresh_sweep=true", cwd=small)
    assert fresh.code == 0, fresh.text
    parents, children = sweep_runs(small)
    assert len(parents) == 2 and len(children) == 4
    assert parents[0].data.tags["serotiny.sweep_key"] == parents[1].data.tags["serotiny.sweep_key"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children[2:]} == {parents[1].info.run_id}

    tested = run_cli("test", cwd=small)  # a sweep's newest job, never its parent
    assert tested.code == 0, tested.text
    assert f"({children[-1].info.run_id}) of experiment" in tested.text


@pytest.mark.slow
def test_the_next_joblib_sweep_in_the_same_process_runs_in_its_own_project(tmp_path, empty_store):
    """Joblib's workers end with the command: a second command of the process (a notebook's)
    imports its own project's package in its jobs, not the first project's, kept by a worker."""
    for name in ("first", "second"):
        project = init_project(tmp_path / name, empty_store)
        manifest(project / "data" / "manifest.csv", rows=60, features=16)
        (project / "proj" / f"{name}.py").write_text(
            "from pytorch_lightning import Callback\n\nclass Marker(Callback):\n    pass\n")
        result = run_cli("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                         "model.latent_dim=2", "trainer.max_epochs=1",
                         f"trainer.callbacks=[{{_target_: proj.{name}.Marker}}]", cwd=project)
        assert result.code == 0, result.text


def test_a_failed_job_leaves_the_parent_failed(small):
    result = run_cli("train", "-m", "model.latent_dim=2", "data.batch_size=-3", *ONE_EPOCH, cwd=small)
    assert result.code == 2, result.text
    [parent], _ = sweep_runs(small)
    assert parent.info.status == "FAILED"
