"""The Optuna sweeper's reading of Hydra's sweep syntax, and the values it hands jobs."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from serotiny_core.errors import ConfigError
from serotiny_core.optuna_sweeper import SearchSpace, _quoted, flat_params


@pytest.mark.parametrize("value", ["plain", "it's", "a\\b", "end\\", "x\\'y", '{"n": 1}', ""])
def test_an_environment_value_reaches_the_job_as_it_was(value):
    parsed = OverridesParser.create().parse_override(f"++hydra.job.env_set.X={_quoted(value)}")
    assert parsed.value() == value


@pytest.mark.parametrize("expression, distribution", [
    ("choice(2,4)", CategoricalDistribution([2, 4])),
    ("2,4", CategoricalDistribution([2, 4])),
    ("choice([8],[16,16])", CategoricalDistribution(["[8]", "[16,16]"])),
    ("range(2,5)", IntDistribution(2, 4)),  # stop left out, as in Hydra's basic sweeper
    ("range(1,10,3)", IntDistribution(1, 7, step=3)),
    ("interval(0.5,2)", FloatDistribution(0.5, 2.0)),
    ("tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
    ("tag(int, interval(1, 64))", IntDistribution(1, 64)),
])
def test_sweep_syntax_becomes_the_optuna_distribution(expression, distribution):
    space = SearchSpace([("the command line", f"model.x={expression}")])
    assert space.distributions == {"model.x": distribution} and space.fixed == []


def test_a_later_expression_wins_and_plain_overrides_go_to_every_trial():
    space = SearchSpace([("params", "model.x=choice(1,2)"), ("params", "+model.y=range(1,3)"),
                         ("the command line", "model.x=3"), ("the command line", "seed=7")])
    assert set(space.distributions) == {"model.y"}
    assert space.overrides({"model.y": 2}) == ["+model.y=2", "model.x=3", "seed=7"]


def test_params_set_from_the_command_line_nest_and_are_flattened():
    assert flat_params({"model.x": "choice(1,2)", "model": {"y": {"z": "interval(0,1)"}}}) == {
        "model.x": "choice(1,2)", "model.y.z": "interval(0,1)"}


def test_an_expression_optuna_cannot_sample_names_where_it_is():
    with pytest.raises(ConfigError, match=r"hydra.sweeper.params.model.x: cannot search"):
        SearchSpace([("hydra.sweeper.params.model.x", "model.x=tag(log, interval(0, 1))")])
