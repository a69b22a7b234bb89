"""Bad input ends in one clear line naming the culprit, exit 2 (config) or 1 (run time).

Every case runs the real CLI on real files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import Result, make_plugin, run_cli
from projects import manifest_frame, store_client, store_runs, write


def error_line(result: Result) -> str:
    """The one line the CLI printed for the failure; no traceback anywhere."""
    assert "Traceback" not in result.text, result.text
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.text
    return lines[0]


def frame() -> pd.DataFrame:
    """60 rows with the project's 16 features, its split names and id column."""
    return manifest_frame(rows=60, features=16, seed=1, splits=("train", "train", "val", "test"),
                          id_column="sample_id")


def train_on(project: Path, data: pd.DataFrame | str, *overrides: str) -> Result:
    path = project / "data" / "bad.csv"
    if isinstance(data, str):
        path.write_text(data)
    else:
        data.to_csv(path, index=False)
    return run_cli("train", f"data.path={path}", "trainer.max_epochs=1", *overrides, cwd=project)


def assert_no_run_left_running(project: Path) -> None:
    client = store_client(project)
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            assert run.info.status != "RUNNING"


def test_missing_manifest(project):
    result = run_cli("train", "data.path=/nowhere/cells.csv", cwd=project)
    assert result.code == 1
    assert "/nowhere/cells.csv" in error_line(result)
    assert_no_run_left_running(project)
    [run] = store_runs(project)
    assert run.info.status == "FAILED" and "does not exist" in run.data.tags["serotiny.error"]


def test_not_a_manifest(project):
    path = project / "data" / "notes.txt"
    path.write_text("hello")
    result = run_cli("train", f"data.path={path}", cwd=project)
    assert result.code == 1 and "not a CSV or parquet" in error_line(result)


def test_empty_manifest(project):
    result = train_on(project, "")
    assert result.code == 1 and "empty" in error_line(result)


def test_split_column_missing(project):
    result = train_on(project, frame(), "data.split_column=fold")
    line = error_line(result)
    assert result.code == 1 and "'fold'" in line and "sample_id" in line


def test_unknown_split_values_name_them_and_the_accepted_ones(project):
    data = frame()
    data.loc[5, "split"] = "holdout"
    line = error_line(train_on(project, data))
    assert "holdout" in line and "train" in line and "val" in line
    assert train_on(project, data, "+data.split_map={holdout: test}").code == 0


def test_empty_validation_split_warns_and_trains(project):
    data = frame()
    data["split"] = data["split"].replace({"val": "train"})
    result = train_on(project, data, "trainer.callbacks=[]")
    assert result.code == 0, result.text
    assert "val" in result.text and "empty" in result.text


def test_empty_train_split_is_an_error(project):
    data = frame()
    data["split"] = data["split"].replace({"train": "val"})
    assert "train" in error_line(train_on(project, data))


def test_column_filter_matching_nothing_names_the_filter(project):
    line = error_line(train_on(project, frame(), "data.loaders.x.startswith=nope_"))
    assert "nope_" in line


def test_non_numeric_column_names_column_and_value(project):
    data = frame().astype({"feature_3": object})
    data.loc[7, "feature_3"] = "abc"
    line = error_line(train_on(project, data))
    assert "feature_3" in line and "abc" in line


def test_nan_in_features_names_column_and_row(project):
    data = frame()
    data.loc[9, "feature_2"] = np.nan
    line = error_line(train_on(project, data))
    assert "feature_2" in line and "9" in line


def test_missing_image_names_row_and_path_from_a_worker(project):
    images = pd.DataFrame({"path": ["/nowhere/a.tif"] * 8, "split": ["train"] * 6 + ["val"] * 2})
    images.to_csv(project / "data" / "images.csv", index=False)
    result = run_cli("train", "data=images", "model=image_vae", "trainer.max_epochs=1",
                     "data.num_workers=1", cwd=project)
    line = error_line(result)
    assert result.code == 1 and "/nowhere/a.tif" in line and "row" in line


def test_yaml_syntax_error_names_file_and_line(project):
    write(project / "proj" / "config" / "model" / "broken.yaml", "_target_: TabularVAE\nx_dim: [16\nlatent_dim: 2\n")
    result = run_cli("train", "model=broken", cwd=project)
    line = error_line(result)
    assert result.code == 2 and "broken.yaml" in line and "line" in line


def test_shape_mismatch_names_batch_shapes_and_model_error(project):
    result = run_cli("train", "model.x_dim=10", "trainer.max_epochs=1", cwd=project)
    line = error_line(result)
    assert result.code == 1
    assert "x: [64, 16]" in line and "TabularVAE" in line


def test_checkpoint_of_another_model_class(project):
    assert run_cli("train", "trainer.max_epochs=1", cwd=project).code == 0
    ckpt = next(project.glob("outputs/train/*/*/checkpoints/last.ckpt"))
    result = run_cli("test", f"ckpt_path={ckpt}", "model=basic_model",
                     "+data.loaders.y={_target_: LoadColumn, column: feature_0}", cwd=project)
    line = error_line(result)
    assert result.code == 2 and str(ckpt) in line and "BasicModel" in line


def test_unwritable_output_folder(project):
    blocker = project / "a_file"
    blocker.write_text("")
    result = run_cli("train", f"hydra.run.dir={blocker}/run", cwd=project)
    line = error_line(result)
    assert result.code == 1 and "a_file" in line


def test_broken_plugin_is_harmless_until_used(project, site, site_env):
    make_plugin(site, "serotiny-cellshape", "0.2", "cellshape", "cellshape.serotiny_plugin",
                "import a_dependency_that_is_missing\n")
    ok = run_cli("train", "trainer.max_epochs=1", cwd=project, env=site_env)
    assert ok.code == 0, ok.text
    used = run_cli("train", "model._target_=cellshape.models.ShapeRegressor", cwd=project, env=site_env)
    line = error_line(used)
    assert used.code == 2 and "cellshape" in line and "a_dependency_that_is_missing" in line


def test_strict_refuses_unlisted_targets_before_anything_runs(project):
    marker = project / "pwned"
    result = run_cli("train", "--strict", "data._target_=os.system", f"+data.command=touch {marker}",
                     cwd=project)
    line = error_line(result)
    assert result.code == 2 and "os.system" in line and "--strict" in line
    assert not marker.exists()
    project_callback = "+trainer.callbacks=[{_target_: proj.callbacks.PrintMetrics}]"
    assert run_cli("train", "--strict", project_callback, "--cfg", "job", cwd=project).code == 0
    refused = run_cli("train", "--strict", project_callback, "trainer.max_epochs=1", cwd=project)
    assert refused.code == 2 and "proj.callbacks.PrintMetrics" in error_line(refused)


def test_strict_from_pyproject_with_allow_list(project):
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text().replace("# strict = true", "strict = true")
    pyproject.write_text(text.replace('# allow_targets = ["proj.*"]', 'allow_targets = ["proj.*"]'))
    allowed = run_cli("train", "+trainer.callbacks=[{_target_: proj.callbacks.PrintMetrics}]",
                      "trainer.max_epochs=1", cwd=project)
    assert allowed.code == 0, allowed.text
    refused = run_cli("train", "data._target_=os.system", cwd=project)
    assert refused.code == 2 and "os.system" in error_line(refused)


@pytest.mark.parametrize("switch", [("--debug",), ()])
def test_debug_shows_the_traceback(project, switch):
    env = {} if switch else {"HYDRA_FULL_ERROR": "1"}
    import os
    import subprocess

    from conftest import SEROTINY

    proc = subprocess.run([SEROTINY, "train", *switch, "model._target_=Nope"], cwd=project,
                          capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "error:" in proc.stderr
