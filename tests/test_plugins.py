"""Discovery through real entry points, list-components and show-component."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import make_plugin, run_cli

GOOD = '''
from serotiny_core import Component, hookimpl

@hookimpl
def serotiny_components():
    return [
        Component(kind="model", name="ShapeRegressor", target="acme.models.ShapeRegressor",
                  aliases=["acme.ShapeRegressor"], description="MLP regressor on shape features"),
        {"kind": "featurizer", "name": "Sobel", "target": "acme.features:Sobel"},
    ]

@hookimpl
def serotiny_config_dirs():
    return ["pkg://acme.config"]
'''

BROKEN_IMPORT = '''
import a_module_that_does_not_exist
'''

HOOK_RAISES = '''
from serotiny_core import hookimpl

@hookimpl
def serotiny_components():
    raise RuntimeError("database of shapes is offline")
'''


def widget_plugin(target: str) -> str:
    return f'''
from serotiny_core import hookimpl

@hookimpl
def serotiny_components():
    return [dict(kind="model", name="Widget", target="{target}")]
'''


def listing(site_env: dict, cwd: Path, *args: str) -> dict:
    result = run_cli("list-components", "--json", *args, cwd=cwd, env=site_env)
    assert result.code == 0, result.text
    return json.loads(result.out)


def test_plugins_are_listed_with_their_distribution(site, site_env, tmp_path):
    make_plugin(site, "serotiny-acme", "0.3.0", "acme", "acme.serotiny_plugin", GOOD)
    data = listing(site_env, tmp_path)
    by_name = {c["name"]: c for c in data["components"]}
    shape = by_name["ShapeRegressor"]
    assert shape == {"kind": "model", "name": "ShapeRegressor", "target": "acme.models.ShapeRegressor",
                     "aliases": ["acme.ShapeRegressor"], "plugin": "acme",
                     "distribution": "serotiny-acme", "version": "0.3.0",
                     "description": "MLP regressor on shape features", "option": "model=ShapeRegressor"}
    assert by_name["Sobel"]["kind"] == "featurizer"
    assert by_name["Sobel"]["target"] == "acme.features.Sobel"
    builtin = by_name["TabularVAE"]
    assert builtin["plugin"] == "serotiny" and builtin["distribution"] == "serotiny"
    assert "serotiny.models.TabularVAE" in builtin["aliases"]
    assert data["broken"] == []


def test_json_schema_has_every_key(tmp_path):
    data = listing({}, tmp_path)
    assert set(data) == {"components", "broken"}
    keys = {"kind", "name", "target", "aliases", "plugin", "distribution", "version", "description",
            "option"}
    assert all(set(c) == keys for c in data["components"])
    kinds = {c["kind"] for c in data["components"]}
    assert {"model", "datamodule", "loader", "callback"} <= kinds


def test_kind_filter(tmp_path):
    data = listing({}, tmp_path, "--kind", "loader")
    names = {c["name"] for c in data["components"]}
    assert names == {"LoadColumns", "LoadColumn", "LoadClass", "LoadImage"}


def test_broken_plugins_are_reported_and_skipped(site, site_env, tmp_path):
    make_plugin(site, "serotiny-acme", "0.3.0", "acme", "acme.serotiny_plugin", GOOD)
    make_plugin(site, "serotiny-broken", "1.0", "broken", "broken_pkg.plugin", BROKEN_IMPORT)
    make_plugin(site, "serotiny-raises", "2.0", "raises", "raises_pkg.plugin", HOOK_RAISES)
    data = listing(site_env, tmp_path)
    broken = {b["plugin"]: b for b in data["broken"]}
    assert set(broken) == {"broken", "raises"}
    assert broken["broken"]["distribution"] == "serotiny-broken"
    assert broken["broken"]["version"] == "1.0"
    assert "a_module_that_does_not_exist" in broken["broken"]["error"]
    assert "database of shapes is offline" in broken["raises"]["error"]
    names = {c["name"] for c in data["components"]}
    assert {"ShapeRegressor", "TabularVAE"} <= names
    table = run_cli("list-components", cwd=tmp_path, env=site_env)
    assert table.code == 0
    assert "broken plugins" in table.out and "database of shapes is offline" in table.out
    assert "Traceback" not in table.text


def test_disable_plugins_by_name(site, site_env, tmp_path):
    make_plugin(site, "serotiny-acme", "0.3.0", "acme", "acme.serotiny_plugin", GOOD)
    env = {**site_env, "SEROTINY_DISABLE_PLUGINS": "acme, other"}
    data = listing(env, tmp_path)
    assert "ShapeRegressor" not in {c["name"] for c in data["components"]}
    assert "TabularVAE" in {c["name"] for c in data["components"]}


def test_name_clash_is_reported_and_qualification_resolves_it(site, site_env, tmp_path):
    make_plugin(site, "serotiny-one", "1.0", "one", "one_pkg.plugin", widget_plugin("one_pkg.W"))
    make_plugin(site, "serotiny-two", "1.0", "two", "two_pkg.plugin", widget_plugin("two_pkg.W"))
    table = run_cli("list-components", cwd=tmp_path, env=site_env)
    assert "'Widget' is registered by" in table.out
    assert "one_pkg.W" in table.out and "two_pkg.W" in table.out
    code = ("from serotiny_core.plugins import get_plugins\n"
            "from serotiny_core.registry import Registry\n"
            "r = Registry(get_plugins().components)\n"
            "print(r.find('two:Widget').target)\n"
            "try:\n    r.find('Widget')\nexcept Exception as e:\n    print('ERR', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**site_env}, capture_output=True,
                          text=True, cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[0] == "two_pkg.W"
    assert lines[1].startswith("ERR 'Widget' is registered by several plugins")
    assert "one" in lines[1] and "two" in lines[1] and "one:Widget" in lines[1]


def test_listing_imports_no_torch_lightning_or_mlflow(site, site_env, tmp_path):
    make_plugin(site, "serotiny-acme", "0.3.0", "acme", "acme.serotiny_plugin", GOOD)
    code = ("import sys\nfrom serotiny_core.cli import main\nmain(['list-components'])\n"
            "heavy = [m for m in ('torch', 'pytorch_lightning', 'lightning', 'mlflow') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=site_env, capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_show_component_prints_signature_docstring_and_skeleton(tmp_path):
    result = run_cli("show-component", "serotiny.models.TabularVAE", cwd=tmp_path)
    assert result.code == 0, result.text
    assert result.out.startswith("TabularVAE(")
    assert "_target_: TabularVAE" in result.out
    assert "x_dim: ???" in result.out and "latent_dim: ???" in result.out
    assert "beta: 1.0" in result.out
    early = run_cli("show-component", "EarlyStopping", cwd=tmp_path)
    assert "monitor: ???" in early.out or "monitor:" in early.out
    assert "patience: 3" in early.out


def test_show_component_unknown_name_suggests(tmp_path):
    result = run_cli("show-component", "TabulrVAE", cwd=tmp_path)
    assert result.code == 2
    assert "TabularVAE" in result.err and "Traceback" not in result.text


def test_version_and_help(tmp_path):
    from serotiny_core import __version__

    assert run_cli("--version", cwd=tmp_path).out.strip() == f"serotiny {__version__}"
    help_text = run_cli("--help", cwd=tmp_path).out
    for command in ("train", "test", "predict", "list-components", "show-component", "init"):
        assert command in help_text
    for command in ("list-components", "show-component", "init"):
        assert run_cli(command, "--help", cwd=tmp_path).code == 0


def test_every_builtin_target_imports(tmp_path):
    code = ("from serotiny_core.plugins import get_plugins\n"
            "from serotiny_core import import_object\n"
            "p = get_plugins()\n"
            "for c in p.components:\n    import_object(c.target)\n"
            "print(len(p.components), len(p.broken))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    count, broken = proc.stdout.split()
    assert int(count) == 13 and broken == "0"  # 3 models, 1 datamodule, 4 loaders, 5 callbacks


def logged_widget(target: str, log: Path) -> str:
    """A plugin that notes each import of its module in ``log``: listing from the cache imports nothing."""
    return f'''
from serotiny_core import hookimpl

with open({str(log)!r}, "a") as log:
    log.write("imported\\n")

@hookimpl
def serotiny_components():
    return [dict(kind="model", name="Widget", target="{target}")]
'''


def widgets(env: dict, cwd: Path) -> set[str]:
    """The targets listed under the name Widget."""
    return {c["target"] for c in listing(env, cwd)["components"] if c["name"] == "Widget"}


def imports(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def rewrite(path: Path, text: str, keep_stat: bool = False) -> None:
    """Write ``text`` to ``path``; ``keep_stat`` keeps its size and mtime: a change no stamp can see."""
    before = path.stat()
    assert not keep_stat or len(text) == before.st_size
    path.write_text(text)
    if keep_stat:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_cached_listing_follows_changes_to_the_distribution(site, site_env, tmp_path, plugin_cache):
    log = tmp_path / "imports.log"
    make_plugin(site, "serotiny-one", "1.0", "one", "one_pkg.plugin", logged_widget("one_pkg.W", log))
    assert widgets(site_env, tmp_path) == {"one_pkg.W"} and imports(log) == 1
    assert list(plugin_cache.glob("plugins-*.json"))
    assert widgets(site_env, tmp_path) == {"one_pkg.W"} and imports(log) == 1  # from the cache

    rewrite(site / "one_pkg" / "plugin.py", logged_widget("one_pkg.Widget2", log))
    assert widgets(site_env, tmp_path) == {"one_pkg.Widget2"} and imports(log) == 2
    metadata_file = site / "serotiny_one-1.0.dist-info" / "METADATA"
    stat = metadata_file.stat()
    os.utime(metadata_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # e.g. reinstalled
    assert widgets(site_env, tmp_path) == {"one_pkg.Widget2"} and imports(log) == 3
    assert widgets(site_env, tmp_path) == {"one_pkg.Widget2"} and imports(log) == 3

    assert widgets({**site_env, "SEROTINY_DISABLE_PLUGINS": "one"}, tmp_path) == set()
    assert widgets({**site_env, "SEROTINY_NO_CACHE": "1"}, tmp_path) == {"one_pkg.Widget2"}
    assert imports(log) == 4


def test_editable_plugins_are_never_served_from_the_cache(site, site_env, tmp_path, plugin_cache):
    log = tmp_path / "imports.log"
    src = tmp_path / "src"  # a path finder's tree: the module lives outside the folder of its dist-info
    make_plugin(site, "serotiny-edit", "1.0", "edit", "edit_pkg.plugin", logged_widget("edit_pkg.W", log))
    (site / "serotiny_edit-1.0.dist-info" / "direct_url.json").write_text(
        json.dumps({"url": f"file://{tmp_path}", "dir_info": {"editable": True}}))
    make_plugin(src, "serotiny-dev", "1.0", "dev", "dev_pkg.plugin", logged_widget("dev_pkg.W", log))
    (src / "serotiny_dev-1.0.dist-info").rename(site / "serotiny_dev-1.0.dist-info")
    env = {**site_env, "PYTHONPATH": f"{site}{os.pathsep}{src}", "PYTHONDONTWRITEBYTECODE": "1"}
    assert widgets(env, tmp_path) == {"edit_pkg.W", "dev_pkg.W"} and imports(log) == 2

    rewrite(site / "edit_pkg" / "plugin.py", logged_widget("edit_pkg.V", log), keep_stat=True)
    rewrite(src / "dev_pkg" / "plugin.py", logged_widget("dev_pkg.V", log), keep_stat=True)
    assert widgets(env, tmp_path) == {"edit_pkg.V", "dev_pkg.V"} and imports(log) == 4
    assert not any("_pkg" in path.read_text() for path in plugin_cache.glob("plugins-*.json"))


def test_a_corrupt_or_unwritable_cache_is_ignored(site, site_env, tmp_path, plugin_cache):
    log = tmp_path / "imports.log"
    make_plugin(site, "serotiny-one", "1.0", "one", "one_pkg.plugin", logged_widget("one_pkg.W", log))
    assert widgets(site_env, tmp_path) == {"one_pkg.W"}
    (cached,) = plugin_cache.glob("plugins-*.json")
    payload = json.loads(cached.read_text())
    for entry in payload["plugins"].values():  # stamps still current, contents nonsense
        entry["components"] = [{"kind": 7, "name": ["Widget"]}]
    for damaged in (json.dumps(payload).encode(), cached.read_bytes()[:200], b"\xff\xfe\0 not json"):
        cached.write_bytes(damaged)
        result = run_cli("list-components", "--json", cwd=tmp_path, env=site_env)
        assert result.code == 0 and result.err == "", result.text
        assert "one_pkg.W" in {c["target"] for c in json.loads(result.out)["components"]}
    assert imports(log) == 4
    assert widgets(site_env, tmp_path) == {"one_pkg.W"} and imports(log) == 4  # rewritten whole

    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    assert widgets({**site_env, "SEROTINY_CACHE_DIR": str(not_a_folder / "cache")}, tmp_path) == {"one_pkg.W"}


def test_broken_plugins_are_not_cached(site, site_env, tmp_path):
    make_plugin(site, "serotiny-raises", "2.0", "raises", "raises_pkg.plugin", HOOK_RAISES)
    for _ in range(2):
        (broken,) = listing(site_env, tmp_path)["broken"]
        assert broken["plugin"] == "raises" and broken["distribution"] == "serotiny-raises"
        assert "database of shapes is offline" in broken["error"]
