"""Plugins that hang or print while they load: serotiny names them and its output stays valid."""

from __future__ import annotations

import json
import time

from conftest import make_plugin, run_cli

QUIET = '''
from serotiny_core import Component, hookimpl

@hookimpl
def serotiny_components():
    return [Component(kind="model", name="Quiet", target="quiet_pkg.models.Quiet")]
'''

SLEEPS = '''
import time
time.sleep(60)  # a network call that never answers
'''

PRINTS = '''
print("hello from a chatty plugin")
from serotiny_core import Component, hookimpl

@hookimpl
def serotiny_components():
    print("declaring my components")
    return [Component(kind="model", name="Chatty", target="chatty_pkg.models.Chatty")]
'''


def test_a_plugin_that_hangs_at_import_is_named_and_listed_broken(site, site_env, tmp_path):
    make_plugin(site, "serotiny-quiet", "1.0", "quiet", "quiet_pkg.plugin", QUIET)
    make_plugin(site, "serotiny-sleepy", "1.0", "sleepy", "sleepy_pkg.plugin", SLEEPS)
    started = time.monotonic()
    result = run_cli("list-components", "--json", cwd=tmp_path,
                     env={**site_env, "SEROTINY_PLUGIN_IMPORT_TIMEOUT": "6"}, timeout=50,
                     subprocess=True)  # the hung import goes on: not in this process
    assert result.code == 0, result.text
    assert time.monotonic() - started < 40
    assert "still importing plugin 'sleepy'" in result.err
    assert "SEROTINY_DISABLE_PLUGINS=sleepy" in result.err
    data = json.loads(result.out)
    broken = {b["plugin"]: b["error"] for b in data["broken"]}
    assert "still importing after 6 s" in broken["sleepy"]
    assert "Quiet" in {c["name"] for c in data["components"]}
    skipped = run_cli("list-components", "--json", cwd=tmp_path, timeout=50, subprocess=True,
                      env={**site_env, "SEROTINY_DISABLE_PLUGINS": "sleepy"})
    assert skipped.code == 0 and "sleepy" not in skipped.err


def test_a_plugin_that_prints_keeps_json_listing_valid(site, site_env, tmp_path):
    make_plugin(site, "serotiny-chatty", "1.0", "chatty", "chatty_pkg.plugin", PRINTS)
    result = run_cli("list-components", "--json", cwd=tmp_path, env=site_env)
    assert result.code == 0, result.text
    assert "Chatty" in {c["name"] for c in json.loads(result.out)["components"]}
    assert "hello from a chatty plugin" in result.err and "declaring my components" in result.err


def test_a_run_names_a_slow_plugin_while_it_waits_for_it(project, site, site_env):
    make_plugin(site, "serotiny-sleepy", "1.0", "sleepy", "sleepy_pkg.plugin",
                "import time\ntime.sleep(6)\n")
    result = run_cli("train", "--cfg", "job", cwd=project, env=site_env, timeout=120)
    assert result.code == 0, result.text
    assert "still importing plugin 'sleepy' (sleepy_pkg.plugin) after 5 s" in result.err
