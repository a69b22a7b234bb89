"""``serotiny list-components`` and ``serotiny --help`` against bare-interpreter baselines.

Goals (issue 8): ``list-components`` <= 2x a bare
``importlib.metadata.entry_points(group="serotiny.plugins")`` in a fresh
interpreter, with 1 and with 200 plugin distributions installed;
``serotiny --help`` <= 3x ``python -c pass``.

"1 distribution" is the environment as installed: serotiny's own built-ins
are the one ``serotiny.plugins`` distribution. "200" adds 200 generated
plugin distributions (a ``.dist-info`` folder with ``entry_points.txt`` plus
a small package whose hooks declare two components each) in a temp folder on
``PYTHONPATH``, exactly what pip leaves behind; the baseline runs with the
same ``PYTHONPATH``. An extra, informational row scans *and* imports every
entry point's module, the least any lister that calls the hooks must do.

``list-components`` keeps what the plugins' hooks returned in a cache
(``serotiny_core/plugin_cache.py``), in a temp ``SEROTINY_CACHE_DIR`` here.
The timed runs are warm: the check before them fills the cache. The "cold
cache" row (info) empties its own cache folder before each run, so it pays
for importing every plugin and writing the cache. serotiny itself is an
editable install in this checkout, which is never cached: its built-ins are
imported on every run, warm or cold.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import (PYTHON, SEROTINY, alternate, clean_env, header, median, run_timed, seconds,
                     table, verdict)

N_PLUGINS = 200
REPEATS = 11
BARE_SCAN = "import importlib.metadata as m; m.entry_points(group='serotiny.plugins')"
SCAN_AND_LOAD = ("import importlib.metadata as m\n"
                 "for ep in m.entry_points(group='serotiny.plugins'): ep.load()")

PLUGIN_CODE = '''\
from serotiny_core import Component, hookimpl


@hookimpl
def serotiny_components():
    return [
        Component(kind="model", name="BenchModel{i}", target="benchplug{i}.models.Model",
                  aliases=["benchplug{i}.Model"], description="generated model {i}"),
        Component(kind="loader", name="BenchLoader{i}", target="benchplug{i}.loaders.Loader",
                  description="generated loader {i}"),
    ]


@hookimpl
def serotiny_config_dirs():
    return []
'''


def make_plugins(site: Path, count: int) -> None:
    """``count`` plugin distributions in ``site``, as pip would install them."""
    for i in range(count):
        package = site / f"benchplug{i}"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "plugin.py").write_text(PLUGIN_CODE.format(i=i))
        info = site / f"benchplug{i}-1.0.{i}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: benchplug{i}\nVersion: 1.0.{i}\n")
        (info / "entry_points.txt").write_text(f"[serotiny.plugins]\nbenchplug{i} = benchplug{i}.plugin\n")
        (info / "top_level.txt").write_text(f"benchplug{i}\n")


def check_listing(env: dict[str, str], expected_plugins: int) -> None:
    """The generated plugins really are listed (a benchmark of an error would be meaningless)."""
    out = subprocess.run([SEROTINY, "list-components", "--json"], env=env, capture_output=True,
                         text=True, check=True).stdout
    payload = json.loads(out)
    plugins = {c["plugin"] for c in payload["components"]}
    if len(plugins) != expected_plugins or payload["broken"]:
        raise SystemExit(f"expected {expected_plugins} plugins, listed {len(plugins)}; "
                         f"broken: {payload['broken'][:3]}")


PHASES = r"""
import contextlib, io, json, time
t = time.perf_counter
phases = {}
s = t(); import importlib.metadata as md; phases["import importlib.metadata"] = t() - s
s = t(); eps = list(md.entry_points(group="serotiny.plugins")); phases["entry-point scan"] = t() - s
s = t(); [(ep.dist.metadata["Name"], ep.dist.version) for ep in eps]
phases["Name + Version of each dist (2 METADATA parses each)"] = t() - s
s = t(); [ep.load() for ep in eps]; phases["import every plugin module (ep.load)"] = t() - s
try:
    s = t(); from serotiny_core.listing import list_components; from serotiny_core.plugins import discover
    phases["import serotiny_core.listing/plugins"] = t() - s
    s = t(); found = discover(lambda: eps)
    phases["serotiny discover() of the scanned entry points, modules already imported"] = t() - s
    from serotiny_core.plugin_cache import PluginCache
    discover(lambda: eps, PluginCache.open())  # fills this interpreter's own cache (sys.path differs)
    s = t(); found = discover(lambda: eps, PluginCache.open())
    phases["the same from a warm cache (as list-components)"] = t() - s
    with contextlib.redirect_stdout(io.StringIO()):
        s = t(); list_components(found, as_json=True); phases["print --json"] = t() - s
        s = t(); import rich.console, rich.table; phases["import rich"] = t() - s
        s = t(); list_components(found); phases["print rich tables (200 columns wide)"] = t() - s
except Exception as error:  # an API renamed: the CLI timings above still hold
    phases[f"serotiny phases unavailable ({type(error).__name__})"] = 0.0
print(json.dumps(phases))
"""


def phase_profile(env: dict[str, str]) -> list[tuple[str, float]]:
    """Where ``list-components`` spends its time, step by step in one process (after a warm run)."""
    out = subprocess.run([PYTHON, "-c", PHASES], env=env, capture_output=True, text=True,
                         check=True).stdout
    return list(json.loads(out.strip().splitlines()[-1]).items())


def cache_files(folder: Path) -> dict[str, int]:
    """The cache files and their mtimes: unchanged after the timed runs means none of them missed."""
    return {path.name: path.stat().st_mtime_ns for path in folder.glob("plugins-*.json")}


def cold_run(cache: Path, env: dict[str, str]) -> float:
    """``list-components --json`` with its cache folder emptied first (not timed)."""
    shutil.rmtree(cache, ignore_errors=True)
    return run_timed([SEROTINY, "list-components", "--json"], env)


def main() -> None:
    header("bench/list_components.py: discovery and --help start-up")
    with tempfile.TemporaryDirectory(prefix="serotiny-bench-plugins-") as tmp:
        site = Path(tmp) / "site"  # the caches go beside it: a new folder on sys.path would void them
        site.mkdir()
        make_plugins(site, N_PLUGINS)
        warm_cache = Path(tmp) / "cache"
        warm = {"SEROTINY_CACHE_DIR": str(warm_cache)}
        setups = {"1": clean_env(warm), str(N_PLUGINS): clean_env({**warm, "PYTHONPATH": str(site)})}
        cold_cache = Path(tmp) / "cold-cache"
        cold_env = {**setups[str(N_PLUGINS)], "SEROTINY_CACHE_DIR": str(cold_cache)}
        check_listing(setups["1"], 1)
        check_listing(setups[str(N_PLUGINS)], N_PLUGINS + 1)
        filled = cache_files(warm_cache)
        cases = {}
        for label, env in setups.items():
            cases[(label, "baseline")] = lambda env=env: run_timed([PYTHON, "-c", BARE_SCAN], env)
            cases[(label, "scan+load")] = lambda env=env: run_timed([PYTHON, "-c", SCAN_AND_LOAD], env)
            cases[(label, "table")] = lambda env=env: run_timed([SEROTINY, "list-components"], env)
            cases[(label, "json")] = lambda env=env: run_timed([SEROTINY, "list-components", "--json"], env)
        cases[(str(N_PLUGINS), "cold")] = lambda: cold_run(cold_cache, cold_env)
        cases[("-", "pass")] = lambda: run_timed([PYTHON, "-c", "pass"], setups["1"])
        cases[("-", "help")] = lambda: run_timed([SEROTINY, "--help"], setups["1"])
        # every command in one rotation, so that the machine's slow spells hit all of them alike
        times = {key: median(values) for key, values in alternate(cases, REPEATS).items()}
        stayed_warm = bool(filled) and cache_files(warm_cache) == filled
        profile = phase_profile(setups[str(N_PLUGINS)])

    rows = []
    for label in setups:
        base = times[(label, "baseline")]
        rows.append([f"bare `entry_points(group=...)`, {label} dist(s)", seconds(base), "1.00x", "baseline"])
        load = times[(label, "scan+load")]
        rows.append([f"bare scan + `ep.load()` each (info), {label} dist(s)", seconds(load),
                     f"{load / base:.2f}x", "-"])
        for name, flag in (("table", ""), ("json", " --json")):
            ratio = times[(label, name)] / base
            rows.append([f"`serotiny list-components{flag}`, {label} dist(s)", seconds(times[(label, name)]),
                         f"{ratio:.2f}x", verdict(ratio, 2, higher_is_better=False)])
        if (label, "cold") in times:
            cold = times[(label, "cold")]
            rows.append([f"`serotiny list-components --json`, cold cache (info), {label} dist(s)",
                         seconds(cold), f"{cold / base:.2f}x", "-"])
    rows.append(["bare `python -c pass`", seconds(times[("-", "pass")]), "1.00x", "baseline"])
    ratio = times[("-", "help")] / times[("-", "pass")]
    rows.append(["`serotiny --help`", seconds(times[("-", "help")]), f"{ratio:.2f}x",
                 verdict(ratio, 3, higher_is_better=False)])

    print(f"median of {REPEATS} runs each, all commands in one alternating rotation; every command in "
          "a fresh interpreter, output to /dev/null (so rich renders 200 columns wide); "
          "`list-components` runs with a warm plugin cache except the cold-cache row\n")
    print(table(["command", "median", "ratio", "goal"], rows))
    print("\nwarm cache: " + ("every timed run hit it (written once, by the check, and never again)"
                              if stayed_warm else "WARNING: missing or rewritten during the timed runs"))
    print(f"\nwhere the time goes with {N_PLUGINS} plugin dists (one process, step by step; info):\n")
    print(table(["step", "time"], [[name, seconds(t)] for name, t in profile]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
