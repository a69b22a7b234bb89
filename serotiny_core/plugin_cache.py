"""What each installed plugin's hooks returned, kept between runs for listing.

Asking 200 plugins for their components means importing 200 modules, which
costs as much as the entry-point scan itself (bench/README.md), so
``serotiny list-components`` keeps the answers in a JSON file in the user's
cache folder and imports only the plugins it cannot vouch for. An answer is
reused only while nothing it came from has changed:

- the file belongs to one interpreter and ``sys.path``, and is dropped whole
  when a folder on ``sys.path`` changes: installing or removing any
  distribution can change what another plugin's hooks return (or mend a
  broken one);
- each plugin's entry is keyed by its ``.dist-info`` folder and the mtime and
  size of its METADATA, RECORD, entry_points.txt, direct_url.json and of the
  module its entry point names, so reinstalling or editing it misses.

Editable installs (``direct_url.json`` says so, or the module lives outside
the folder that holds the dist-info, as a ``.pth`` path finder arranges) and
plugins that failed are never cached: they are imported every time. A cache
that cannot be read, parsed or written is ignored, never an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import zlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from serotiny_core.component import Component

CACHE_DIR_ENV = "SEROTINY_CACHE_DIR"
NO_CACHE_ENV = "SEROTINY_NO_CACHE"
# Bump when the shape of an entry changes: files of another format are ignored.
FORMAT = 1
STAMPED_FILES = ("METADATA", "RECORD", "entry_points.txt", "direct_url.json")
DECLARED_KEYS = ("kind", "name", "target", "aliases", "description")

Stat = list[int] | None  # [mtime_ns, size]; None where the file is missing


@dataclass(frozen=True)
class Declared:
    """What one plugin's hooks returned (components carry no plugin/distribution yet)."""

    components: list[Component]
    config_dirs: list[str]


def cache_dir() -> Path:
    """``$SEROTINY_CACHE_DIR``, else ``$XDG_CACHE_HOME/serotiny``, else ``~/.cache/serotiny``."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "serotiny"


def _stat(path: str) -> Stat:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return [found.st_mtime_ns, found.st_size]


def _environment() -> dict[str, Any]:
    """The interpreter and every ``sys.path`` folder's stat: an install or removal changes one."""
    return {"format": FORMAT, "python": sys.executable,
            "path": [[entry, _stat(entry or ".")] for entry in sys.path]}


def _folder(ep: metadata.EntryPoint) -> str | None:
    """The entry point's ``.dist-info`` folder; None where there is none to key on."""
    path = getattr(getattr(ep, "dist", None), "_path", None)
    return str(path) if path is not None and path.name.endswith(".dist-info") else None


def _module_file(ep: metadata.EntryPoint) -> str | None:
    module = sys.modules.get(ep.module)
    return getattr(module, "__file__", None)


def _has(dist_stamp: list[Stat], name: str) -> bool:
    return dist_stamp[STAMPED_FILES.index(name)] is not None


def _editable(folder: str) -> bool:
    """PEP 610: pip marks ``pip install -e`` in direct_url.json. Unreadable counts as editable."""
    try:
        with open(os.path.join(folder, "direct_url.json"), encoding="utf-8") as file:
            return bool(json.load(file).get("dir_info", {}).get("editable", False))
    except (OSError, ValueError, AttributeError):
        return True


def _cacheable(folder: str, dist_stamp: list[Stat], module_file: str) -> bool:
    """Whether the stamp sees every change: a METADATA, not editable, the module beside its dist-info.

    An editable install's code lives in the developer's tree, where edits
    touch no file the stamp looks at. The paths are compared as found on
    ``sys.path``, unresolved: a symlinked twin is refused, never wrongly let in.
    """
    if not _has(dist_stamp, "METADATA") or (_has(dist_stamp, "direct_url.json") and _editable(folder)):
        return False
    site = os.path.join(os.path.abspath(os.path.dirname(folder)), "")
    return os.path.abspath(module_file).startswith(site)


def _encode(declared: Declared, stamp: list[Stat], module_file: str) -> dict[str, Any]:
    components = [{key: getattr(c, key) for key in DECLARED_KEYS} for c in declared.components]
    return {"stamp": stamp, "module_file": module_file, "components": components,
            "config_dirs": declared.config_dirs}


def _decode(record: dict[str, Any]) -> Declared | None:
    """The entry as hook results; None for anything serotiny would not have written."""
    try:
        components = [Component(**item) for item in record["components"]]
        dirs = list(record["config_dirs"])
    except (KeyError, TypeError, ValueError):
        return None
    texts = [*dirs, *(text for c in components for text in (*c.aliases, c.description))]
    return Declared(components, dirs) if all(isinstance(t, str) for t in texts) else None


def _load(path: Path, environment: dict[str, Any]) -> dict[str, Any]:
    """The entries of the file at ``path``; none if it is missing, corrupt or of another environment."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(payload, dict) or payload.get("environment") != environment:
        return {}
    entries = payload.get("plugins")
    return entries if isinstance(entries, dict) else {}


class PluginCache:
    """Hook results by entry point, read once per run and written back only when they grew."""

    def __init__(self, path: Path, environment: dict[str, Any]) -> None:
        self._path = path
        self._environment = environment
        self._entries = _load(path, environment)
        self._dist_stamps: dict[str, list[Stat]] = {}
        self._dirty = False

    @classmethod
    def open(cls) -> PluginCache | None:
        """The cache of this interpreter and ``sys.path``; None when turned off or homeless."""
        if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
            return None
        try:
            folder = cache_dir()
        except (RuntimeError, KeyError):  # no home directory to put it in
            return None
        environment = _environment()
        digest = zlib.crc32(json.dumps([sys.executable, sys.path]).encode())
        return cls(folder / f"plugins-{digest:08x}.json", environment)

    @staticmethod
    def _key(ep: metadata.EntryPoint, folder: str) -> str:
        return f"{ep.name}={ep.value}@{folder}"

    def get(self, ep: metadata.EntryPoint) -> Declared | None:
        """The cached hook results of ``ep``, if still current; stamps it for :meth:`put` either way.

        The stamp is taken before the plugin is imported, so a change made
        while it imports is seen on the next run.
        """
        folder = _folder(ep)
        if folder is None:
            return None
        key = self._key(ep, folder)
        dist_stamp = [_stat(os.path.join(folder, name)) for name in STAMPED_FILES]
        self._dist_stamps[key] = dist_stamp
        record = self._entries.get(key)
        if not isinstance(record, dict) or not isinstance(record.get("module_file"), str):
            return None
        if record.get("stamp") != [*dist_stamp, _stat(record["module_file"])]:
            return None
        return _decode(record)

    def put(self, ep: metadata.EntryPoint, declared: Declared) -> None:
        """Remember what ``ep``'s hooks returned, where the stamp will see it change."""
        folder, module_file = _folder(ep), _module_file(ep)
        if folder is None or module_file is None:
            return
        key = self._key(ep, folder)
        dist_stamp = self._dist_stamps.get(key)
        if dist_stamp is not None and _cacheable(folder, dist_stamp, module_file):
            self._entries[key] = _encode(declared, [*dist_stamp, _stat(module_file)], module_file)
            self._dirty = True

    def save(self) -> None:
        """Write the entries atomically (temp file, then rename); a failure only costs speed."""
        if not self._dirty:
            return
        temp = self._path.with_name(f"{self._path.name}.{os.getpid()}.tmp")
        payload = json.dumps({"environment": self._environment, "plugins": self._entries})
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(payload, encoding="utf-8")
            os.replace(temp, self._path)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
