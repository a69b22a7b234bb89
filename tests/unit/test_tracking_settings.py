"""The ``mlflow`` config group, validated without touching MLflow."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from serotiny_core.errors import ConfigError
from serotiny_core.tracking import TrackingSettings


def settings(**values: object) -> TrackingSettings | None:
    return TrackingSettings.from_config(OmegaConf.create(values), default_experiment="proj")


def test_null_uri_turns_tracking_off() -> None:
    assert settings(tracking_uri=None, experiment_name="x") is None
    assert TrackingSettings.from_config(None, "proj") is None


def test_defaults_experiment_and_stringifies_tags_and_drops_autolog() -> None:
    found = settings(tracking_uri="sqlite:///m.db", tags={"seed": 1}, autolog=True)
    assert found.experiment_name == "proj"
    assert found.tags == {"seed": "1"}
    assert found.log_checkpoints == "last"


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="mlflow: unknown key 'trackign_uri'") as raised:
        settings(tracking_uri="sqlite:///m.db", trackign_uri="x")
    assert "tracking_uri" in raised.value.hint


def test_log_checkpoints_choices() -> None:
    assert settings(tracking_uri="sqlite:///m.db", log_checkpoints=False).log_checkpoints is False
    with pytest.raises(ConfigError, match="mlflow.log_checkpoints: 'some' is not one of"):
        settings(tracking_uri="sqlite:///m.db", log_checkpoints="some")


def test_log_model_is_on_by_default_and_must_be_a_bool() -> None:
    found = settings(tracking_uri="sqlite:///m.db")
    assert found.log_model is True and found.registered_model_name is None
    assert settings(tracking_uri="sqlite:///m.db", log_model=False).log_model is False
    with pytest.raises(ConfigError, match="mlflow.log_model: 'yes please' is not true or false"):
        settings(tracking_uri="sqlite:///m.db", log_model="yes please")
