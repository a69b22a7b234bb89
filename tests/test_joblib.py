"""Hydra's joblib launcher: jobs in loky worker processes, DataLoader workers inside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from projects import check_parent_and_children, manifest, seed_project, store_client, store_runs

JOBLIB = ("-m", "hydra/launcher=joblib", "trainer.max_epochs=1", "trainer.callbacks=[]")


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """The seed's project (its data config sets num_workers: 1), on a 60-row manifest."""
    root = seed_project(tmp_path / "a_tiny_project")
    manifest(root / "data" / "cells.csv", rows=60)
    return root


def sweep(root: Path, *overrides: str, debug: bool = False):
    return run_cli("train", *(["--debug"] if debug else []), *JOBLIB,
                   f"data.path={root}/data/cells.csv", *overrides, cwd=root, subprocess=True)


def finished_runs(root: Path, count: int) -> list:
    client = store_client(root)
    runs = store_runs(root, "tiny", count, jobs_only=True)
    for run in runs:
        assert run.info.status == "FINISHED", (run.info.run_name, run.data.tags.get("serotiny.error"))
        assert {"train_loss", "val_loss"} <= set(run.data.metrics), run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        assert "checkpoints/last.ckpt" in artifacts
    return runs


@pytest.mark.slow
def test_six_parallel_joblib_jobs_with_dataloader_workers_on_one_sqlite_store_lose_nothing(seed):
    result = sweep(seed, "hydra.launcher.n_jobs=6", "model.latent_dim=2,3,4,5,6,7")
    assert result.code == 0, result.text
    assert "pickle error" not in result.text
    runs = finished_runs(seed, 6)
    assert sorted(int(r.data.params["model/latent_dim"]) for r in runs) == [2, 3, 4, 5, 6, 7]
    assert all(r.data.params["data/num_workers"] == "1" for r in runs)
    assert len({r.info.run_name for r in runs}) == 6
    summary = result.out[result.out.index("multirun summary"):]
    assert all(run.info.run_id in summary for run in runs)
    check_parent_and_children(seed, {str(job): f"model.latent_dim={job + 2}" for job in range(6)})


@pytest.mark.slow
def test_debug_shows_the_joblib_jobs_own_traceback(seed):
    result = sweep(seed, "hydra.launcher.n_jobs=2", "model.latent_dim=2,3", "data.batch_size=-3",
                   debug=True)
    assert result.code == 2, result.text
    # The last error line (loky's resource tracker, a process of its own, may warn after it).
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert errors[-1] == "error: batch_size must be at least 1, got -3"
    assert 'in task\n' in result.err and "serotiny_core/runner.py" in result.err
