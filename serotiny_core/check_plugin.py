"""``serotiny check-plugin NAME``: what a plugin's users would hit, found before they do.

For the installed plugin (entry point name) or distribution ``NAME`` it
checks, in order: the entry point loads and each hook returns valid
components; every target imports and is the kind it claims; every packaged
YAML file composes, each ``_target_`` in it resolves and its keys match the
signatures; the YAML files are in the installed distribution, not only in
a source tree; each loader's per-row and whole-frame results agree; each
model with a packaged config trains one batch on data the plugin's own
configs describe. Each problem is one line naming the file and the key;
the command exits 1 when there is any. What could not be checked is said
in a note, which is not a failure.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import Any

from serotiny_core.component import KNOWN_KINDS, Component
from serotiny_core.config_origin import config_folder
from serotiny_core.errors import ConfigError, one_line
from serotiny_core.hookspecs import ENTRY_POINT_GROUP
from serotiny_core.plugins import discover, get_plugins
from serotiny_core.imports import import_object

# The Lightning class a component of each kind must subclass, in either namespace.
LIGHTNING_BASES = {"model": "LightningModule", "datamodule": "LightningDataModule",
                   "callback": "Callback"}
LIGHTNING_NAMESPACES = ("pytorch_lightning", "lightning.pytorch")


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    message: str

    def line(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


@dataclass
class Report:
    """What the checks found, for one plugin distribution."""

    name: str
    distribution: str = ""
    version: str = ""
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def problem(self, file: str, key: str, message: str) -> None:
        self.problems.append(Problem(file, key, message))


@dataclass(frozen=True)
class PackagedConfig:
    """One YAML file of a plugin's config folder, as Hydra sees it (``group=option``)."""

    path: Path
    shown: str  # the path inside the distribution, as problems name it
    group: str
    option: str


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_entry_points(name: str) -> list[metadata.EntryPoint]:
    """The ``serotiny.plugins`` entry points of plugin ``name`` or of distribution ``name``."""
    every = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    found = [ep for ep in every if ep.name == name
             or _canonical(getattr(ep.dist, "name", "") or "") == _canonical(name)]
    if not found:
        known = ", ".join(sorted({ep.name for ep in every})) or "none"
        raise ConfigError(f"no installed serotiny plugin or distribution named {name!r} "
                          f"(installed plugins: {known})",
                          hint="pip install it (pip install -e . in its folder) and run again")
    return found


def _module_file(ep: metadata.EntryPoint) -> str:
    """The hooks module's file, where problems with the hooks are; else the entry point's."""
    try:
        spec = util.find_spec(ep.module)
    except Exception:  # its package fails to import: the load check says why
        spec = None
    dist = getattr(getattr(ep, "dist", None), "name", "")
    return spec.origin if spec is not None and spec.origin else f"{dist} entry_points.txt".strip()


def _check_hooks(report: Report, ep: metadata.EntryPoint) -> tuple[list[Component], list[str]] | None:
    """Load the entry point and call its hooks, alone: what a user's serotiny would do."""
    own = discover(entry_points=lambda: [ep])
    for broken in own.broken:
        report.problem(_module_file(ep), ep.name, broken.error)
    if own.broken:
        return None
    report.checked.append(f"entry point {ep.name} = {ep.value}")
    return own.components, [source for _, source in own.config_dirs]


def _lightning_base(kind: str) -> tuple[type, ...]:
    import importlib

    found = []
    for namespace in LIGHTNING_NAMESPACES:
        try:
            found.append(getattr(importlib.import_module(namespace), LIGHTNING_BASES[kind]))
        except ImportError:
            continue
    return tuple(found)


def kind_mismatch(kind: str, obj: Any) -> str | None:
    """Why ``obj`` is not a ``kind``; None when it is (or, for a factory function, may be)."""
    if not callable(obj):
        return f"is a {type(obj).__name__}, not a class or function"
    if kind in LIGHTNING_BASES and isinstance(obj, type) and not issubclass(obj, _lightning_base(kind)):
        return (f"{obj.__module__}.{obj.__qualname__} is not a {LIGHTNING_BASES[kind]} "
                f"(of pytorch_lightning or lightning.pytorch)")
    return None


def _check_components(report: Report, hooks_file: str, components: list[Component]) -> None:
    for component in components:
        key = f"{component.kind} {component.name!r}"
        if component.kind not in KNOWN_KINDS:
            report.notes.append(f"{key}: kind not one of {', '.join(KNOWN_KINDS)}; not checked")
            continue
        try:
            obj = import_object(component.target)
        except Exception as error:
            report.problem(hooks_file, key, f"target {component.target!r} does not import: {one_line(error)}")
            continue
        why = kind_mismatch(component.kind, obj)
        if why is not None:
            report.problem(hooks_file, key, why)
        else:
            report.checked.append(f"{key} -> {component.target}")


def packaged_configs(report: Report, hooks_file: str, sources: list[str]) -> list[PackagedConfig]:
    """Every YAML file under the plugin's config sources, as ``group=option``."""
    found = []
    for source in sources:
        located = config_folder(source)
        if located is None or not located[0].is_dir():
            report.problem(hooks_file, "serotiny_config_dirs()", f"{source!r} is not a folder serotiny can read")
            continue
        folder, base = located
        for path in sorted(folder.rglob("*.yaml")):
            relative = path.relative_to(folder)
            shown = path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)
            found.append(PackagedConfig(path, shown, relative.parent.as_posix(), relative.stem))
    return found


def _direct_url(dist: metadata.Distribution) -> dict[str, Any]:
    try:
        return json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return {}


def _source_yamls(dist: metadata.Distribution, sources: list[str]) -> set[str]:
    """YAML files of the source folder the distribution was built from (pip records it)."""
    url = _direct_url(dist).get("url", "")
    if not url.startswith("file://"):
        return set()
    root = Path(url.removeprefix("file://"))
    found: set[str] = set()
    for source in sources:
        relative = source.removeprefix("pkg://").strip("/").replace(".", "/")
        for base in (root, root / "src"):
            if (base / relative).is_dir():
                found |= {p.relative_to(base).as_posix() for p in (base / relative).rglob("*.yaml")}
    return found


def check_shipped(report: Report, dist: metadata.Distribution, configs: list[PackagedConfig],
                  sources: list[str]) -> None:
    """Every packaged YAML file is listed in the distribution's RECORD: it is in the wheel."""
    if _direct_url(dist).get("dir_info", {}).get("editable"):
        report.notes.append(f"{dist.name} is an editable install: whether its YAML files are in "
                            f"the wheel is checked only on an installed wheel")
        return
    if dist.files is None:
        report.notes.append(f"{dist.name} has no RECORD: whether its YAML files ship is not checked")
        return
    recorded = {str(path).replace("\\", "/") for path in dist.files}
    wanted = {c.shown for c in configs} | _source_yamls(dist, sources)
    for shown in sorted(wanted - recorded):
        report.problem(shown, "package-data", f"is not in the installed distribution {dist.name} "
                       f"(its RECORD): list it in [tool.setuptools.package-data] and rebuild")
    if wanted and wanted <= recorded:
        report.checked.append(f"{len(wanted)} YAML file(s) are in {dist.name}'s RECORD")


def check_plugin(name: str, as_json: bool = False) -> int:
    """``serotiny check-plugin NAME [--json]``: 0 when nothing is wrong, 1 otherwise."""
    from serotiny_core.plugin_trial import check_configs

    entry_points = find_entry_points(name)
    dist = entry_points[0].dist
    report = Report(name, dist.name if dist else "", dist.version if dist else "")
    for ep in entry_points:
        declared = _check_hooks(report, ep)
        if declared is None:
            continue
        components, sources = declared
        hooks_file = _module_file(ep)
        _check_components(report, hooks_file, components)
        configs = packaged_configs(report, hooks_file, sources)
        if ep.dist is not None:
            check_shipped(report, ep.dist, configs, sources)
        check_configs(report, ep.name, get_plugins(), components, configs, sources, hooks_file)
    _print(report, as_json)
    return 1 if report.problems else 0


def _print(report: Report, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**asdict(report), "ok": not report.problems}, indent=2))
        return
    for problem in report.problems:
        print(problem.line())
    for note in report.notes:
        print(f"note: {note}")
    what = f"{report.distribution or report.name} {report.version}".strip()
    verdict = f"{len(report.problems)} problem(s)" if report.problems else "no problems"
    print(f"check-plugin {what}: {verdict}, {len(report.checked)} checks passed")
