"""The pytest fixtures serotiny installs (serotiny_core.pytest_plugin), used as a plugin author would."""

from __future__ import annotations

import logging
import os
import sys

import pandas as pd
import pytest

from serotiny_core.pytest_plugin import ManifestShape


@pytest.mark.parametrize("serotiny_project", [{"rows": 30, "features": 6, "splits": ("a", "b")}],
                         indirect=True)
def test_the_manifest_has_the_shape_the_test_chose(serotiny_project):
    frame = pd.read_csv(serotiny_project.manifest)
    assert len(frame) == 30
    assert [c for c in frame.columns if c.startswith("feature_")] == [f"feature_{i}" for i in range(6)]
    assert set(frame["split"]) == {"a", "b"}
    assert "x_dim: 6" in (serotiny_project.config_dir / "model" / "default.yaml").read_text()


@pytest.mark.serotiny_manifest(rows=20, features=3)
def test_the_marker_chooses_the_shape_too(serotiny_project):
    assert serotiny_project.shape == ManifestShape(rows=20, features=3)
    assert pd.read_csv(serotiny_project.manifest).shape[0] == 20


def test_an_in_process_run_leaves_the_process_as_it_was(serotiny_project, run_serotiny):
    from hydra.core.global_hydra import GlobalHydra

    before = (dict(os.environ), os.getcwd(), list(sys.path), list(logging.getLogger().handlers))
    shown = run_serotiny("train", "model.latent_dim=3", "--cfg", "job")
    assert shown.code == 0, shown.text
    assert "latent_dim: 3" in shown.out and shown.run_id is None
    trained = run_serotiny("train")  # Hydra's job logging, the project's package, an MLflow process
    assert trained.code == 0 and trained.run_id is not None, trained.text
    assert (dict(os.environ), os.getcwd(), list(sys.path), list(logging.getLogger().handlers)) == before
    assert not GlobalHydra.instance().is_initialized()
    assert "proj" not in sys.modules


@pytest.mark.slow
def test_a_subprocess_run_reports_its_run_and_errors(serotiny_project, run_serotiny, mlflow_runs):
    trained = run_serotiny("train", subprocess=True)
    assert trained.code == 0, trained.text
    [run] = mlflow_runs()
    assert trained.run_id == run.run_id and "config/train.yaml" in run.artifacts
    failed = run_serotiny("train", "model=nope", subprocess=True)
    assert failed.code == 2 and failed.err.startswith("error:") and failed.run_id is None


def test_usage_errors_are_an_exit_code_not_an_exception(run_serotiny, tmp_path):
    result = run_serotiny("list-components", "--no-such-flag", cwd=tmp_path)
    assert result.code == 2 and "--no-such-flag" in result.err
    assert run_serotiny("show-component", "TabularVAE", cwd=tmp_path).code == 0


def test_a_project_without_a_store_has_no_runs(serotiny_project, mlflow_runs):
    assert mlflow_runs() == []
