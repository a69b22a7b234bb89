"""Lightning 1.x trainer keys translated for Lightning 2."""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from serotiny_core.legacy import translate_trainer


def test_gpus_becomes_accelerator_and_devices(caplog) -> None:
    node = OmegaConf.create({"gpus": 2, "max_epochs": 3})
    with caplog.at_level(logging.WARNING, logger="serotiny"):
        notes = translate_trainer(node)
    assert OmegaConf.to_container(node) == {"max_epochs": 3, "accelerator": "gpu", "devices": 2}
    assert notes == ["gpus: 2 -> accelerator: gpu, devices: 2"]
    assert "Lightning 1.x keys" in caplog.text


def test_zero_gpus_is_dropped_not_translated() -> None:
    node = OmegaConf.create({"gpus": 0})
    assert translate_trainer(node) == ["dropped gpus: 0"]
    assert OmegaConf.to_container(node) == {}


def test_renamed_and_removed_keys() -> None:
    node = OmegaConf.create({"replace_sampler_ddp": False, "weights_summary": "top",
                             "progress_bar_refresh_rate": 5})
    notes = translate_trainer(node)
    assert OmegaConf.to_container(node) == {"use_distributed_sampler": False}
    assert notes == ["replace_sampler_ddp -> use_distributed_sampler",
                     "dropped progress_bar_refresh_rate", "dropped weights_summary"]


def test_lightning_2_config_is_left_alone(caplog) -> None:
    node = OmegaConf.create({"accelerator": "cpu", "devices": 1})
    with caplog.at_level(logging.WARNING, logger="serotiny"):
        assert translate_trainer(node) == []
    assert caplog.text == ""
    assert translate_trainer(None) == []
