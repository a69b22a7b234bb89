"""Discover serotiny plugins through entry points, one at a time.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that
fails to import; here each entry point is loaded and each hook called in
isolation, so a broken plugin is recorded (name, distribution, version, the
error's first line) and skipped while the rest keep working.

Listing goes through :func:`listed_plugins`, which takes what unchanged
plugins declared last time from :mod:`serotiny_core.plugin_cache` instead of
importing them; running commands import every plugin (:func:`get_plugins`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, field
from collections import defaultdict
from functools import lru_cache
from types import ModuleType
from importlib import metadata
from typing import Any, Callable, Iterator

import pluggy

from serotiny_core import hookspecs
from serotiny_core.component import Component
from serotiny_core.errors import one_line
from serotiny_core.plugin_cache import Declared, PluginCache

DISABLE_ENV = "SEROTINY_DISABLE_PLUGINS"
# Listing gives up on a plugin whose import takes longer than this (seconds);
# runs wait for it, naming it on stderr once it has taken SLOW_IMPORT_S.
IMPORT_LIMIT_ENV = "SEROTINY_PLUGIN_IMPORT_TIMEOUT"
DEFAULT_IMPORT_LIMIT_S = 30.0
SLOW_IMPORT_S = 5.0
# The distribution that ships the built-in components: its config folder
# goes last on the search path so that every other plugin can override it.
BUILTIN_DISTRIBUTION = "serotiny"


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from."""

    name: str
    distribution: str
    version: str
    module: str = ""


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded, or whose hook raised."""

    name: str
    distribution: str
    version: str
    error: str
    module: str = ""
    # The full traceback of the error, for --debug: the one line above rarely says where.
    traceback: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, str]:
        return {"plugin": self.name, "distribution": self.distribution,
                "version": self.version, "error": self.error}


@dataclass
class Plugins:
    """The loaded plugins, what they declared, and what failed."""

    manager: pluggy.PluginManager
    loaded: list[PluginInfo] = field(default_factory=list)
    broken: list[BrokenPlugin] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    config_dirs: list[tuple[PluginInfo, str]] = field(default_factory=list)

    def broken_providing(self, target: str) -> BrokenPlugin | None:
        """The broken plugin whose top-level package ``target`` lives in, if any."""
        top = target.split(".")[0]
        return next((b for b in self.broken if b.module.split(".")[0] == top), None)


def disabled_names() -> set[str]:
    """Plugin names blocked by ``SEROTINY_DISABLE_PLUGINS=a,b``."""
    raw = os.environ.get(DISABLE_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    """Entry points of the group, in a stable order (by plugin name)."""
    found = metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP)
    return sorted(found, key=lambda ep: (ep.name, ep.value))


def _name_and_version(dist: Any) -> tuple[str, str]:
    """A distribution's name and version, from its ``name-version.dist-info`` folder
    where it has one: parsing METADATA for each of 200 plugins costs more than the scan."""
    folder = getattr(dist, "_path", None)
    stem = folder.name.removesuffix(".dist-info") if folder is not None else ""
    if folder is not None and folder.name.endswith(".dist-info") and stem.count("-") == 1:
        name, version = stem.split("-")
        return name.replace("_", "-"), version
    return dist.metadata["Name"] or "", dist.version or ""


def _info(ep: metadata.EntryPoint) -> PluginInfo:
    dist = getattr(ep, "dist", None)
    module = ep.value.split(":")[0].strip()
    if dist is None:
        return PluginInfo(ep.name, "", "", module)
    return PluginInfo(ep.name, *_name_and_version(dist), module)


HOOK_NAMES = tuple(name for name in vars(hookspecs) if name.startswith("serotiny_"))


def _hooks_of(plugin: Any, name: str) -> ModuleType:
    """A bare module holding only the plugin's hook functions.

    pluggy inspects every attribute of what it registers (for an object, its
    class's too); for 200 plugin modules that costs more than importing them.
    """
    hooks = ModuleType(f"serotiny_plugin_hooks.{name}")
    for hook in HOOK_NAMES:
        if hasattr(plugin, hook):
            setattr(hooks, hook, getattr(plugin, hook))
    return hooks


def _impls_by_plugin(manager: pluggy.PluginManager, hook: str) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for impl in getattr(manager.hook, hook).get_hookimpls():
        grouped[impl.plugin_name].append(impl)
    return grouped


def _call_hook(plugins: Plugins, info: PluginInfo, hook: str, impls: list[Any]) -> list[Any] | None:
    """Call one plugin's implementations of ``hook``; record it as broken if one raises."""
    results: list[Any] = []
    try:
        for impl in impls:
            results.extend(impl.function() or [])
    except Exception as error:  # a plugin's bug must not break serotiny
        _mark_broken(plugins, info, f"{hook}() raised {one_line(error)}")
        return None
    return results


def _mark_broken(plugins: Plugins, info: PluginInfo, error: str) -> None:
    """Record ``info`` as broken; called while handling its exception, whose traceback is kept."""
    raised = sys.exc_info()[1] is not None
    plugins.broken.append(BrokenPlugin(info.name, info.distribution, info.version, error, info.module,
                                       traceback.format_exc() if raised else ""))
    if plugins.manager.has_plugin(info.name):
        plugins.manager.unregister(name=info.name)
    plugins.loaded = [p for p in plugins.loaded if p.name != info.name]


class ImportTimeout(Exception):
    """A plugin's import took longer than listing allows."""


def import_limit() -> float:
    """Listing's limit on one plugin's import, from ``SEROTINY_PLUGIN_IMPORT_TIMEOUT`` (seconds)."""
    try:
        return max(float(os.environ.get(IMPORT_LIMIT_ENV, DEFAULT_IMPORT_LIMIT_S)), 0.1)
    except ValueError:
        return DEFAULT_IMPORT_LIMIT_S


def _say_slow(ep: metadata.EntryPoint) -> None:
    print(f"serotiny: still importing plugin {ep.name!r} ({ep.value}) after {SLOW_IMPORT_S:g} s; "
          f"{DISABLE_ENV}={ep.name} skips it", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ImportTimeout` in the block after ``seconds`` (main thread only, via SIGALRM:
    the import runs where it always runs, and a sleep or a network wait is interrupted)."""
    usable = seconds is not None and hasattr(signal, "setitimer") and (
        threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise ImportTimeout(f"still importing after {seconds:g} s (limit: {IMPORT_LIMIT_ENV})")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _load(ep: metadata.EntryPoint, limit: float | None) -> Any:
    """Import the entry point's module, named on stderr when it is slow; under ``limit``, bounded."""
    note = threading.Timer(SLOW_IMPORT_S, _say_slow, (ep,))
    note.daemon = True
    note.start()
    try:
        with _time_limit(limit):
            return ep.load()
    finally:
        note.cancel()


def _register(plugins: Plugins, ep: metadata.EntryPoint, info: PluginInfo,
              limit: float | None = None) -> bool:
    try:
        plugins.manager.register(_hooks_of(_load(ep, limit), ep.name), name=ep.name)
    except Exception as error:
        _mark_broken(plugins, info, f"cannot load {ep.value!r}: {one_line(error)}")
        return False
    plugins.loaded.append(info)
    return True


def _collect(plugins: Plugins, info: PluginInfo,
             impls: dict[str, dict[str, list[Any]]]) -> Declared | None:
    """Ask one plugin for its components and config dirs, all or nothing."""
    declared = _call_hook(plugins, info, "serotiny_components", impls["serotiny_components"][info.name])
    dirs = (_call_hook(plugins, info, "serotiny_config_dirs", impls["serotiny_config_dirs"][info.name])
            if declared is not None else None)
    if declared is None or dirs is None:
        return None
    try:
        components = [Component.coerce(item) for item in declared]
    except (TypeError, ValueError) as error:
        _mark_broken(plugins, info, f"serotiny_components() returned {one_line(error)}")
        return None
    return Declared(components, [str(d) for d in dirs])


def _add(plugins: Plugins, info: PluginInfo, declared: Declared) -> None:
    for component in declared.components:
        plugins.components.append(Component(
            kind=component.kind, name=component.name, target=component.target,
            aliases=component.aliases, description=component.description,
            plugin=info.name, distribution=info.distribution, version=info.version))
    plugins.config_dirs.extend((info, d) for d in declared.config_dirs)


Asked = tuple[metadata.EntryPoint, PluginInfo, Declared | None]


def _declare(plugins: Plugins, asked: list[Asked], cache: PluginCache | None) -> None:
    """Add each plugin's components and config dirs in entry-point order, cached or asked now."""
    impls = {hook: _impls_by_plugin(plugins.manager, hook) for hook in HOOK_NAMES}
    for ep, info, cached in asked:
        declared = cached if cached is not None else _collect(plugins, info, impls)
        if declared is None:
            continue
        _add(plugins, info, declared)
        if cache is not None and cached is None:
            cache.put(ep, declared)


def discover(entry_points: Callable[[], list[metadata.EntryPoint]] = _entry_points,
             cache: PluginCache | None = None, limit: float | None = None) -> Plugins:
    """Load every ``serotiny.plugins`` entry point, isolating failures.

    With a ``cache``, a plugin whose hook results it holds is neither
    imported nor registered with the manager: fit for listing, not for
    running, where importing a plugin may matter by itself. A plugin whose
    import takes longer than ``limit`` seconds is recorded as broken.

    What plugins print while they load goes to stderr: stdout belongs to
    the command (``list-components --json`` is read by programs).
    """
    with contextlib.redirect_stdout(sys.stderr):
        return _discover(entry_points, cache, limit)


def _discover(entry_points: Callable[[], list[metadata.EntryPoint]], cache: PluginCache | None,
              limit: float | None) -> Plugins:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(manager=manager)
    blocked = disabled_names()
    claimed: set[str] = set()
    asked: list[Asked] = []
    for ep in entry_points():
        info = _info(ep)
        if ep.name in blocked:
            manager.set_blocked(ep.name)
            plugins.disabled.append(ep.name)
        elif ep.name in claimed or manager.is_blocked(ep.name):
            plugins.broken.append(BrokenPlugin(
                info.name, info.distribution, info.version,
                f"another distribution already registers a plugin named {ep.name!r}", info.module))
        else:
            cached = cache.get(ep) if cache is not None else None
            if cached is not None:
                plugins.loaded.append(info)
            elif not _register(plugins, ep, info, limit):
                continue
            claimed.add(ep.name)
            asked.append((ep, info, cached))
    _declare(plugins, asked, cache)
    if cache is not None:
        cache.save()
    return plugins


@lru_cache(maxsize=1)
def get_plugins() -> Plugins:
    """The plugins of this process, discovered once."""
    return discover()


def listed_plugins() -> Plugins:
    """The plugins as a listing sees them: hook results from the cache where it has them."""
    return discover(cache=PluginCache.open(), limit=import_limit())


def ordered_config_dirs(plugins: Plugins) -> list[tuple[str, str]]:
    """(plugin name, config source) in search-path order: plugins by name, the built-ins last."""
    ranked = sorted(plugins.config_dirs,
                    key=lambda pair: (pair[0].distribution == BUILTIN_DISTRIBUTION, pair[0].name))
    return [(info.name, path) for info, path in ranked]
