"""What counts as the same sweep, and what finds a job's run again (no MLflow needed)."""

from __future__ import annotations

from serotiny_core.sweep import job_key, sweep_key, task_overrides

SWEEP = ["model.latent_dim=2,4", "trainer.max_epochs=3"]


def test_launcher_and_sweeper_settings_and_fresh_sweep_are_the_same_sweep() -> None:
    other_launch = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "+hydra.sweeper.n_trials=50",
                    "fresh_sweep=true", *reversed(SWEEP)]
    assert sweep_key("train", "proj", other_launch) == sweep_key("train", "proj", SWEEP)


def test_another_value_mode_or_experiment_is_another_sweep() -> None:
    key = sweep_key("train", "proj", SWEEP)
    assert sweep_key("train", "proj", ["model.latent_dim=2,8", "trainer.max_epochs=3"]) != key
    assert sweep_key("train", "other", SWEEP) != key
    assert sweep_key("test", "proj", SWEEP) != key


def test_a_jobs_key_is_its_own_overrides_sorted_and_secrets_masked() -> None:
    assert job_key(["trainer.max_epochs=3", "hydra.job.num=1", "model.latent_dim=2"]) == \
        "model.latent_dim=2 trainer.max_epochs=3"
    assert task_overrides(["+db.password=hunter22"]) == ["+db.password=***"]
