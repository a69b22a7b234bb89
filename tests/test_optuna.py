"""hydra/sweeper=serotiny_optuna for real: the CLI, an SQLite MLflow store, an SQLite Optuna study."""

from __future__ import annotations

import math
import subprocess
import sys

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

SWEEP = ("-m", "hydra/sweeper=serotiny_optuna")
PRUNERS = """\
import optuna


class AlwaysPrune(optuna.pruners.BasePruner):
    \"\"\"Prunes every trial at its first report: a pruned trial without depending on luck.\"\"\"

    def prune(self, study, trial):
        return True


class PruneOddTrials(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return trial.number % 2 == 1
"""


def studies(project) -> list[optuna.Study]:
    """Every study in the project's Optuna storage."""
    url = f"sqlite:///{project.root}/optuna.db"
    return [optuna.load_study(study_name=s.study_name, storage=url)
            for s in optuna.get_all_study_summaries(url)]


def trial_states(study: optuna.Study) -> list[str]:
    return [trial.state.name for trial in study.trials]


def trial_runs(mlflow_runs) -> list:
    """The trials' MLflow runs, checked to be children of the sweep's one parent run."""
    runs = mlflow_runs()
    [parent] = [run for run in runs if run.tags.get("serotiny.mode") == "sweep"]
    children = [run for run in runs if run is not parent]
    assert all(run.tags["mlflow.parentRunId"] == parent.run_id for run in children)
    return children


def best_results(project) -> list[dict]:
    return [yaml.safe_load(path.read_text())
            for path in sorted(project.root.glob("multirun/train/*/*/optimization_results.yaml"))]


@pytest.mark.slow
def test_a_stored_study_is_continued_by_the_same_command(serotiny_project, run_serotiny, mlflow_runs):
    first = run_serotiny("train", *SWEEP, "hydra.sweeper.n_trials=2")
    assert first.code == 0, first.text
    [study] = studies(serotiny_project)
    assert trial_states(study) == ["COMPLETE", "COMPLETE"]
    runs = trial_runs(mlflow_runs)
    assert len(runs) == 2 and all(run.status == "FINISHED" for run in runs)
    assert sorted(run.metrics["val_loss"] for run in runs) == pytest.approx(
        sorted(trial.value for trial in study.trials))

    more = run_serotiny("train", *SWEEP, "hydra.sweeper.n_trials=4")  # n_trials is the total
    assert more.code == 0, more.text
    [study] = studies(serotiny_project)
    assert trial_states(study) == ["COMPLETE"] * 4 and len(trial_runs(mlflow_runs)) == 4
    again = run_serotiny("train", *SWEEP, "hydra.sweeper.n_trials=4")
    assert again.code == 0, again.text
    assert len(studies(serotiny_project)[0].trials) == 4 and len(trial_runs(mlflow_runs)) == 4
    assert best_results(serotiny_project)[-1]["best_value"] == pytest.approx(study.best_value)


def test_fresh_sweep_starts_a_study_of_its_own_and_keeps_the_stored_one(serotiny_project, run_serotiny):
    for fresh in ("++fresh_sweep=false", "++fresh_sweep=true"):
        result = run_serotiny("train", *SWEEP, "hydra.sweeper.n_trials=1", fresh)
        assert result.code == 0, result.text
    found = studies(serotiny_project)
    assert len(found) == 2 and all(trial_states(study) == ["COMPLETE"] for study in found)
    assert found[1].study_name.startswith(found[0].study_name + "-")


def test_the_search_space_syntax_gives_values_in_range_and_maximize_keeps_the_largest(
        serotiny_project, run_serotiny):
    result = run_serotiny("train", *SWEEP, "hydra.sweeper.n_trials=3", "hydra.sweeper.direction=maximize",
                          "hydra.sweeper.storage=null", "model.latent_dim=range(2,5)",
                          "model.beta=interval(0.5,2.0)", "model.optimizer.lr=tag(log, interval(1e-4, 1e-2))",
                          "model.hidden_layers=choice([8],[16,16])", "seed=7")
    assert result.code == 0, result.text
    assert not (serotiny_project.root / "optuna.db").exists()  # storage: null keeps it in memory
    objectives = []
    for folder in sorted(serotiny_project.root.glob("multirun/train/*/*/[0-9]*")):
        job = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
        model = job["model"]
        assert model["latent_dim"] in (2, 3, 4)  # range(2,5) leaves 5 out, as Hydra's does
        assert 0.5 <= model["beta"] <= 2.0 and 1e-4 <= model["optimizer"]["lr"] <= 1e-2
        assert model["hidden_layers"] in ([8], [16, 16]) and job["seed"] == 7
        objectives.append(yaml.safe_load((folder / "result.json").read_text())["objective"])
    assert len(objectives) == 3 and all(math.isfinite(v) for v in objectives)
    [best] = best_results(serotiny_project)
    assert best["best_value"] == pytest.approx(max(objectives))


def pruner(project, name: str) -> str:
    """The override that selects pruner ``name`` of the project's own module."""
    (project.root / project.package / "pruners.py").write_text(PRUNERS)
    return f"hydra.sweeper.pruner={{_target_: {project.package}.pruners.{name}}}"


@pytest.mark.parametrize("storage", ["stored", "in memory"])
def test_a_pruned_trial_ends_pruned_with_a_finished_run_and_the_command_succeeds(
        serotiny_project, run_serotiny, mlflow_runs, storage):
    result = run_serotiny("train", *SWEEP, "hydra.sweeper.n_trials=1", "trainer.max_epochs=3",
                          pruner(serotiny_project, "AlwaysPrune"),
                          *(["hydra.sweeper.storage=null"] if storage == "in memory" else []))
    assert result.code == 0, result.text
    if storage == "stored":
        [study] = studies(serotiny_project)
        [trial] = study.trials
        assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [0]
    [run] = trial_runs(mlflow_runs)
    assert run.status == "FINISHED" and run.tags["serotiny.pruned"] == "true"
    assert "val_loss" in run.metrics
    assert best_results(serotiny_project) == []  # no trial completed: no best to write


def test_a_trial_a_killed_command_left_running_is_run_again_with_its_values(
        serotiny_project, run_serotiny, mlflow_runs):
    """What a command killed mid-trial leaves in the store: a RUNNING trial with its values."""
    url = f"sqlite:///{serotiny_project.root}/optuna.db"
    killed = optuna.create_study(study_name="killed", storage=url)
    killed.enqueue_trial({"model.latent_dim": 16, "model.optimizer.lr": 0.005})
    killed.ask({"model.latent_dim": CategoricalDistribution([2, 4, 8, 16]),
                "model.optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True)})
    result = run_serotiny("train", *SWEEP, "hydra.sweeper.study_name=killed", "hydra.sweeper.n_trials=1")
    assert result.code == 0, result.text
    [study] = studies(serotiny_project)
    assert trial_states(study) == ["FAIL", "COMPLETE"]
    assert study.trials[1].params == {"model.latent_dim": 16, "model.optimizer.lr": 0.005}
    [run] = trial_runs(mlflow_runs)
    assert run.params["model/latent_dim"] == "16" and run.status == "FINISHED"


def test_the_sweeper_imports_optuna_only_when_it_runs():
    """Hydra imports every module of hydra_plugins on start-up, for every command."""
    code = ("import sys; from hydra.core.plugins import Plugins; "
            "names = list(Plugins.instance().class_name_to_class); "
            "assert any(n.endswith('SerotinyOptunaSweeper') for n in names), names; "
            "assert 'optuna' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("argument, key", [
    ("model.latent_dim=range(5,2)", "model.latent_dim"),
    ("+hydra.sweeper.params.model.beta='tag(log, interval(0, 1))'", "hydra.sweeper.params.model.beta"),
])
def test_a_bad_search_expression_is_one_error_line_naming_its_key(serotiny_project, run_serotiny,
                                                                 argument, key):
    result = run_serotiny("train", *SWEEP, argument)
    assert result.code == 2, result.text
    [line] = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert key in line and "choice(a,b,...)" in line and "Traceback" not in result.text


@pytest.mark.slow
def test_trials_run_and_are_pruned_in_parallel_with_the_joblib_launcher(serotiny_project, run_serotiny,
                                                                         mlflow_runs):
    """Each job reaches its trial from a worker process, through the stored study."""
    result = run_serotiny("train", *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                          "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2", "trainer.max_epochs=2",
                          pruner(serotiny_project, "PruneOddTrials"))
    assert result.code == 0, result.text
    [study] = studies(serotiny_project)
    assert trial_states(study) == ["COMPLETE", "PRUNED"]
    runs = sorted(trial_runs(mlflow_runs), key=lambda run: "serotiny.pruned" in run.tags)
    assert [run.status for run in runs] == ["FINISHED", "FINISHED"]
    assert "serotiny.pruned" not in runs[0].tags and runs[1].tags["serotiny.pruned"] == "true"
    assert runs[0].metrics["val_loss"] == pytest.approx(study.trials[0].value)
