"""Scaling out for real: DDP on 2 CPU processes (in subprocesses), launchers, Optuna."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import Result, run_cli
from projects import check_parent_and_children, store_runs
from serotiny_core.job import RANK_VARIABLES, SHARED_JOB_ENV, global_rank, rank_overrides

ONE_EPOCH = "trainer.max_epochs=1"
DDP_ON_CPU = ("trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu")


def job_dirs(project: Path) -> list[Path]:
    """Every job folder a sweep wrote: multirun/train/<day>/<time>/<job>."""
    return sorted(p for p in (project / "multirun").glob("train/*/*/[0-9]*") if p.is_dir())


def summary_rows(result: Result, runs: list) -> list[str]:
    """The summary table's line of each MLflow run, in the order of ``runs``."""
    assert "multirun summary" in result.out, result.text
    table = result.out[result.out.index("multirun summary"):].splitlines()
    rows = [[line for line in table if run.info.run_id in line] for run in runs]
    assert all(len(found) == 1 for found in rows), table
    return [found[0] for found in rows]


@pytest.fixture
def rank_env(monkeypatch):
    """No rank variables from the machine running the tests; set them with monkeypatch."""
    for key in (*RANK_VARIABLES, SHARED_JOB_ENV):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.mark.parametrize("env, rank", [
    ({}, 0),
    ({"LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "2"}, 0),  # Lightning's rank 0, launched
    ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, 1),  # a rank Lightning re-launched
    ({"SLURM_PROCID": "0", "LOCAL_RANK": "1"}, 1),  # ... inside a one-task SLURM job
    ({"NODE_RANK": "1"}, 1),  # the first process on node 1
    ({"SLURM_PROCID": "3"}, 3),  # srun started the ranks
    ({"RANK": "0", "LOCAL_RANK": "0", "GROUP_RANK": "0"}, 0),  # torchrun
    ({"RANK": "5", "LOCAL_RANK": "1", "GROUP_RANK": "1"}, 5),
])
def test_global_rank_is_zero_only_on_rank_zero(rank_env, env, rank):
    for key, value in env.items():
        rank_env.setenv(key, value)
    assert global_rank() == rank


def test_a_relaunched_rank_runs_the_job_rank_zero_shared(rank_env):
    assert rank_overrides(["model.latent_dim=2,4"]) is None
    rank_env.setenv("LOCAL_RANK", "1")
    own = ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    srun = ["x=1", "hydra.run.dir=out/slurm-7", "hydra/job_logging=colorlog"]
    assert rank_overrides(srun) == ["x=1", "hydra.run.dir=out/slurm-7", *own]
    rank_env.setenv(SHARED_JOB_ENV, json.dumps({"overrides": ["hydra/output=serotiny", "x=2"],
                                                "output_dir": "/p/multirun/t/3"}))
    assert rank_overrides(["x=1,2", "hydra.run.dir=elsewhere"]) == [
        "hydra/output=serotiny", "x=2", "hydra.mode=RUN", 'hydra.run.dir="/p/multirun/t/3"', *own]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_makes_one_run_one_folder_one_log(project):
    result = run_cli("train", *DDP_ON_CPU, ONE_EPOCH, cwd=project, subprocess=True)
    assert result.code == 0, result.text
    assert "GLOBAL_RANK: 1" in result.text  # the second process really ran
    [folder] = [p for p in (project / "outputs").glob("train/*/*")]
    assert (folder / ".hydra" / "config.yaml").is_file()
    assert list(folder.glob("*.log")) == [folder / "train.log"]  # rank 1 wrote no log of its own
    assert not (project / "multirun").exists()
    [run] = store_runs(project, jobs_only=True)
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer/strategy"] == "ddp"
    assert math.isfinite(run.data.metrics["val_loss"])
    saved = json.loads((folder / "result.json").read_text())
    assert saved["run_id"] == run.info.run_id and saved["metric"] == "val_loss"


def written_predictions(result: Result) -> pd.DataFrame:
    assert result.code == 0, result.text
    [path] = re.findall(r"predictions written to (\S+)", result.text)
    return pd.read_parquet(path)


@pytest.mark.slow
def test_ddp_predict_by_run_writes_every_row_once_in_manifest_order(project):
    assert run_cli("train", ONE_EPOCH, "mlflow.run_name=base", cwd=project).code == 0
    single = written_predictions(run_cli("predict", "mlflow.run_name=base", cwd=project))
    # every rank takes the run's checkpoint; rank 0 writes all ranks' rows
    ddp = written_predictions(run_cli("predict", "mlflow.run_name=base", *DDP_ON_CPU, cwd=project,
                                          subprocess=True))
    manifest = pd.read_csv(project / "data" / "manifest.csv")
    assert len(ddp) == len(single) == len(manifest)
    assert list(ddp["sample_id"]) == list(single["sample_id"]) == list(manifest["sample_id"])
    pd.testing.assert_frame_equal(ddp, single, check_exact=False, rtol=1e-5)
    statuses = sorted((run.info.run_name, run.info.status) for run in store_runs(project, jobs_only=True))
    assert statuses == [("base", "FINISHED"), *[("base-predict", "FINISHED")] * 2]


def test_packaged_ddp_trainer_and_example_launcher_and_sweeper_compose(project):
    shown = run_cli("train", "trainer=ddp", "hydra/launcher=slurm",
                    "hydra/sweeper=serotiny_optuna", "--cfg", "all", cwd=project)
    assert shown.code == 0, shown.text
    config = yaml.safe_load(shown.out)
    assert config["trainer"]["strategy"] == "ddp" and config["trainer"]["devices"] == 2
    launcher, sweeper = config["hydra"]["launcher"], config["hydra"]["sweeper"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert {"partition", "gpus_per_node", "timeout_min", "mem_gb"} <= set(launcher)
    assert sweeper["_target_"].endswith("OptunaSweeper") and sweeper["direction"] == "minimize"
    assert "model.latent_dim" in sweeper["params"]


@pytest.mark.slow
def test_submitit_local_runs_two_jobs_with_runs_and_summary_children_of_the_parent(project):
    result = run_cli("train", "-m", "hydra/launcher=submitit_local", "model.latent_dim=2,4",
                     ONE_EPOCH, "mlflow.run_name=sweep", cwd=project)
    assert result.code == 0, result.text
    check_parent_and_children(project, {"0": "model.latent_dim=2", "1": "model.latent_dim=4"})
    found = store_runs(project, jobs_only=True)
    assert sorted(r.info.run_name for r in found) == ["sweep-0", "sweep-1"]
    assert all(r.info.status == "FINISHED" for r in found)
    for run, row in zip(found, summary_rows(result, found)):
        assert f"model.latent_dim={run.data.params['model/latent_dim']}" in row
        assert f"{run.data.metrics['val_loss']:.6g}" in row
    assert [p.name for p in job_dirs(project)] == ["0", "1"]


@pytest.mark.slow
def test_optuna_sweeps_ddp_trials_and_gets_finite_objectives(project):
    result = run_cli("train", "-m", "hydra/sweeper=serotiny_optuna", "hydra.sweeper.n_trials=3",
                     "hydra.sweeper.sampler.seed=0", "model.latent_dim=choice(2,3,4)",
                     *DDP_ON_CPU, ONE_EPOCH, cwd=project, subprocess=True)
    assert result.code == 0, result.text
    [sweep] = list((project / "multirun").glob("train/*/*"))
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert math.isfinite(best["best_value"]) and best["best_params"]["model.latent_dim"] in (2, 3, 4)
    objectives = [json.loads((d / "result.json").read_text())["objective"] for d in job_dirs(project)]
    assert len(objectives) == 3 and all(math.isfinite(v) for v in objectives)
    assert best["best_value"] == pytest.approx(min(objectives))
    found = store_runs(project, jobs_only=True)  # one run per trial: the DDP ranks > 0 opened none
    assert len(found) == 3 and len({r.info.run_name for r in found}) == 3
    assert sorted(r.data.metrics["val_loss"] for r in found) == pytest.approx(sorted(objectives))
    assert len(summary_rows(result, found)) == 3
    assert not (project / "outputs").exists()  # the ranks > 0 made no folder of their own
    assert all(not list(d.glob("*ddp*")) for d in job_dirs(project))


def test_a_sweep_with_test_after_fit_reports_the_fits_val_loss(project):
    """The test after each fit logs test_* names only; the objective is still the fit's val_loss."""
    result = run_cli("train", "-m", "model.latent_dim=2,4", "test_after_fit=true", ONE_EPOCH,
                     "mlflow.run_name=tested", cwd=project)
    assert result.code == 0, result.text
    assert "was not logged" not in result.text
    assert "SELECT " not in result.text  # no SQL statements of MLflow's store among the log lines
    found = store_runs(project, jobs_only=True)
    objectives = [json.loads((d / "result.json").read_text())["objective"] for d in job_dirs(project)]
    assert sorted(objectives) == pytest.approx(sorted(r.data.metrics["val_loss"] for r in found))
    assert all("test_loss" in r.data.metrics for r in found)
    for run, row in zip(found, summary_rows(result, found)):
        assert f"{run.data.metrics['val_loss']:.6g}" in row
