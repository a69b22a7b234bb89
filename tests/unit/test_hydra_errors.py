"""Hydra's and OmegaConf's multi-line errors become one-line serotiny errors."""

from __future__ import annotations

import errno

import pytest
import yaml
from hydra.errors import InstantiationException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from serotiny_core.errors import ConfigError, DataError, SerotinyError
from serotiny_core.hydra_errors import translate


def test_missing_config_lists_options_on_one_line() -> None:
    text = ("In 'train': Could not find 'model/Tabular'\n\nAvailable options in 'model':\n"
            "\tTabularVAE\n\tImageVAE\nConfig search path:\n\tprovider=hydra\n")
    error = translate(MissingConfigException(text, missing_cfg_file="model/Tabular"))
    assert isinstance(error, ConfigError)
    assert "\n" not in str(error)
    assert str(error) == ("In 'train': Could not find 'model/Tabular'; "
                          "Available options in 'model': TabularVAE, ImageVAE")


def test_serotiny_error_in_the_cause_chain_wins() -> None:
    cause = DataError("manifest m.csv has no rows")
    wrapper = InstantiationException("Error in call to target 'x'")
    wrapper.__cause__ = cause
    assert translate(wrapper) is cause


def test_instantiation_error_is_a_run_time_error_not_a_config_error() -> None:
    error = translate(InstantiationException("Error in call to target 'x':\nValueError('bad')"))
    assert type(error) is SerotinyError
    assert "\n" not in str(error)


def test_yaml_and_omegaconf_errors_are_config_errors() -> None:
    try:
        yaml.safe_load("a: [1, 2")
    except yaml.YAMLError as raised:
        error = translate(raised)
    assert isinstance(error, ConfigError) and str(error).startswith("YAML syntax error: ")
    with pytest.raises(OmegaConfBaseException) as raised:
        OmegaConf.create({"a": 1}, flags={"struct": True}).b  # noqa: B018 - the access raises
    error = translate(raised.value)
    assert isinstance(error, ConfigError) and str(error).startswith("Key 'b' is not in struct")
    assert "\n" not in str(error)


def test_os_error_names_the_file_and_a_fix() -> None:
    error = translate(PermissionError(errno.EACCES, "Permission denied", "/out/ckpt"))
    assert str(error).startswith("cannot write or read /out/ckpt: Permission denied")
    assert "hydra.run.dir=" in error.hint


def test_worker_traceback_keeps_the_original_last_line() -> None:
    text = "Caught DataError in DataLoader worker 0.\nOriginal Traceback:\n  File x\nserotiny_core.errors.DataError: bad row 3"
    error = translate(DataError(text))
    assert isinstance(error, DataError) and str(error) == "bad row 3"


def test_other_errors_pass_through_unchanged() -> None:
    error = ValueError("a bug")
    assert translate(error) is error
