"""``serotiny list-components`` and ``serotiny show-component``.

Listing reads only what plugins declared: it never imports a component's
target, so it never imports torch, Lightning or MLflow. ``show-component``
imports the one target it is asked about.
"""

from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass
from typing import Any, Callable

from serotiny_core.component import KNOWN_KINDS, Component
from serotiny_core.component_options import ComponentOptions, group_of
from serotiny_core.errors import ConfigError
from serotiny_core.plugins import Plugins
from serotiny_core.registry import Registry, describe_clash


@dataclass
class Section:
    """One titled table of the listing."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


def _kinds(registry: Registry, only: str | None) -> list[str]:
    present = {c.kind for c in registry.components()}
    ordered = [k for k in KNOWN_KINDS if k in present] + sorted(present - set(KNOWN_KINDS))
    return [k for k in ordered if only is None or k == only]


def _kind_section(kind: str, components: list[Component], options: ComponentOptions) -> Section:
    """One kind's table; its option column, for kinds with a config group, is what to type."""
    grouped = group_of(components[0]) is not None
    rows = [(c.name, *([options.option(c)] if grouped else []), c.target, c.plugin,
             f"{c.distribution}=={c.version}", c.description, ", ".join(c.aliases))
            for c in components]
    columns = ("name", *(["option"] if grouped else []), "target", "plugin", "distribution",
               "description", "aliases")
    return Section(f"{kind}s", columns, rows)


def _broken_section(plugins: Plugins) -> Section:
    rows = [(b.name, f"{b.distribution}=={b.version}", b.error) for b in plugins.broken]
    return Section("broken plugins (skipped)", ("plugin", "distribution", "error"), rows)


def _plain(section: Section) -> str:
    """Aligned columns for pipes and logs: greppable, and fast for hundreds of rows."""
    table = [section.columns, *section.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(section.columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]
    return "\n".join([f"{section.title}:", *lines, ""])


def _rich(section: Section) -> Any:
    """A table drawn for a terminal, wrapped to its width."""
    from rich.table import Table

    table = Table(title=section.title, title_justify="left")
    for column in section.columns:
        table.add_column(column)
    for row in section.rows:
        table.add_row(*row)
    return table


def _print_tracebacks(plugins: Plugins) -> None:
    """Where each broken plugin failed (``--debug``): on stderr, so ``--json`` stays parseable."""
    for broken in plugins.broken:
        if broken.traceback:
            print(f"plugin {broken.name!r} ({broken.distribution}=={broken.version}):\n"
                  f"{broken.traceback}", file=sys.stderr)


def list_components(plugins: Plugins, kind: str | None = None, as_json: bool = False,
                    debug: bool = False) -> int:
    """Print every registered component, then the broken plugins; exit 0 regardless."""
    if debug:
        _print_tracebacks(plugins)
    registry = Registry(plugins.components)
    options = ComponentOptions(registry)
    if as_json:
        payload = {"components": [{**c.as_dict(), "option": options.option(c)}
                                  for c in registry.components(kind)],
                   "broken": [b.as_dict() for b in plugins.broken]}
        print(json.dumps(payload, indent=2))
        return 0
    sections = [_kind_section(k, registry.components(k), options) for k in _kinds(registry, kind)]
    sections += [_broken_section(plugins)] if plugins.broken else []
    notes = [f"clash: {name!r} is registered by {describe_clash(found)}; use '<plugin>:{name}' in configs"
             for name, found in sorted(registry.clashes().items())]
    if kind is not None and not _kinds(registry, kind):
        notes.append(f"no components of kind {kind!r}")
    if plugins.broken and not debug:
        notes.append("run with --debug for the broken plugins' tracebacks")
    if plugins.disabled:
        notes.append(f"disabled by SEROTINY_DISABLE_PLUGINS: {', '.join(plugins.disabled)}")
    _print(sections, notes)
    return 0


def _print(sections: list[Section], notes: list[str]) -> None:
    if not sys.stdout.isatty():
        print("\n".join([*map(_plain, sections), *notes]))
        return
    from rich.console import Console

    console = Console(highlight=False)
    for section in sections:
        console.print(_rich(section))
    for note in notes:
        console.print(note, markup=False)


def _first_paragraph(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n", 1)[0].strip()


def _yaml_value(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...")


def skeleton(target: str, obj: Callable[..., Any]) -> str:
    """A config for ``obj``: every parameter with its default, ``???`` where required."""
    lines = [f"_target_: {target}"]
    for param in inspect.signature(obj).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            lines.append(f"# ...and any other keyword (**{param.name})")
        elif param.kind is param.VAR_POSITIONAL:
            continue
        elif param.default is param.empty:
            lines.append(f"{param.name}: ???")
        else:
            try:
                lines.append(f"{param.name}: {_yaml_value(param.default)}")
            except Exception:  # a default YAML cannot hold, e.g. a class or an object
                lines.append(f"# {param.name}: {param.default!r}")
    return "\n".join(lines)


def show_component(plugins: Plugins, name: str) -> int:
    """Print a component's signature, docstring summary and YAML skeleton."""
    registry = Registry(plugins.components)
    component = registry.find(name)
    target = component.target if component else name
    if component is None and "." not in name:
        close = registry.suggest(name)
        raise ConfigError(f"no component named {name!r}",
                          hint=f"did you mean {', '.join(close)}?" if close else
                          "see 'serotiny list-components'")
    try:
        from serotiny_core.imports import import_object

        obj = import_object(target)
    except Exception as error:
        raise ConfigError(f"cannot import {target!r}: {error}") from error
    shown = component.name if component else target
    print(f"{shown}{inspect.signature(obj)}")
    if component:
        print(f"  kind: {component.kind}   target: {component.target}   "
              f"plugin: {component.plugin} ({component.distribution}=={component.version})")
    summary = _first_paragraph(obj)
    if summary:
        print(f"\n{summary}")
    print(f"\n{skeleton(shown, obj)}")
    return 0
