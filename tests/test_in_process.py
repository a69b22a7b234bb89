"""The suite's CLI runner runs commands in this process: one command leaves nothing for the next.

pytest-xdist runs many tests in one worker process, so a plugin site, a
project package, an environment variable or a working folder one command
was given must be gone before the next command starts.
"""

from __future__ import annotations

import json
import os
import sys

from conftest import make_plugin, run_cli
from projects import WIDGETS

# Trains with the project's own callback: the project's package is imported.
OWN_CALLBACK = "+trainer.callbacks=[{_target_: one.callbacks.PrintMetrics}]"


def components(result) -> set[str]:
    assert result.code == 0, result.text
    return {c["name"] for c in json.loads(result.out)["components"]}


def process_state() -> tuple:
    return dict(os.environ), os.getcwd(), list(sys.path)


def test_two_commands_in_a_row_do_not_see_each_others_plugins(tmp_path, site):
    make_plugin(site, "serotiny-widgets", "0.2", "widgets", "widgets.plugin", WIDGETS)
    before = process_state()
    with_site = run_cli("list-components", "--json", cwd=tmp_path,
                        env={"PYTHONPATH": str(site), "SEROTINY_DISABLE_PLUGINS": "none"})
    assert "Widget" in components(with_site)  # PYTHONPATH given in env= took effect
    assert process_state() == before and "widgets" not in sys.modules
    assert "Widget" not in components(run_cli("list-components", "--json", cwd=tmp_path))


def test_two_commands_in_a_row_do_not_see_each_others_project(tmp_path):
    for name in ("one", "two"):
        assert run_cli("init", name, cwd=tmp_path).code == 0
    before = process_state()
    trained = run_cli("train", OWN_CALLBACK, "trainer.max_epochs=1", "mlflow.tracking_uri=null",
                      cwd=tmp_path / "one")
    assert trained.code == 0, trained.text
    assert process_state() == before and "one" not in sys.modules
    other = run_cli("train", OWN_CALLBACK, "trainer.max_epochs=1", "mlflow.tracking_uri=null",
                    cwd=tmp_path / "two")
    assert other.code == 2 and "one.callbacks.PrintMetrics" in other.err, other.text
