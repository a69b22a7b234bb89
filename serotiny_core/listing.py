"""``serotiny list-components`` and ``serotiny show-component``.

Listing reads only what plugins declared: it never imports a component's
target, so it never imports torch, Lightning or MLflow. ``show-component``
imports the one target it is asked about.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any, Callable

from serotiny_core.component import KNOWN_KINDS, Component
from serotiny_core.errors import ConfigError
from serotiny_core.plugins import Plugins
from serotiny_core.registry import Registry, describe_clash


def _console() -> Any:
    from rich.console import Console

    # Off a terminal (pipes, CI logs) a wide table beats one wrapped at 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _kinds(registry: Registry, only: str | None) -> list[str]:
    present = {c.kind for c in registry.components()}
    ordered = [k for k in KNOWN_KINDS if k in present] + sorted(present - set(KNOWN_KINDS))
    return [k for k in ordered if only is None or k == only]


def _kind_table(kind: str, components: list[Component]) -> Any:
    from rich.table import Table

    table = Table(title=f"{kind}s", title_justify="left", expand=False)
    for column in ("name", "target", "plugin", "distribution", "description"):
        table.add_column(column)
    for c in components:
        name = c.name + (f"\n[dim]aka {', '.join(c.aliases)}[/dim]" if c.aliases else "")
        table.add_row(name, c.target, c.plugin, f"{c.distribution}=={c.version}", c.description)
    return table


def _broken_table(plugins: Plugins) -> Any:
    from rich.table import Table

    table = Table(title="broken plugins (skipped)", title_justify="left", style="red")
    for column in ("plugin", "distribution", "error"):
        table.add_column(column)
    for b in plugins.broken:
        table.add_row(b.name, f"{b.distribution}=={b.version}", b.error)
    return table


def list_components(plugins: Plugins, kind: str | None = None, as_json: bool = False) -> int:
    """Print every registered component, then the broken plugins; exit 0 regardless."""
    registry = Registry(plugins.components)
    if as_json:
        payload = {"components": [c.as_dict() for c in registry.components(kind)],
                   "broken": [b.as_dict() for b in plugins.broken]}
        print(json.dumps(payload, indent=2))
        return 0
    console = _console()
    for k in _kinds(registry, kind):
        console.print(_kind_table(k, registry.components(k)))
    if kind is not None and not _kinds(registry, kind):
        console.print(f"no components of kind {kind!r}")
    for name, found in sorted(registry.clashes().items()):
        console.print(f"[yellow]clash:[/yellow] {name!r} is registered by {describe_clash(found)}; "
                      f"use '<plugin>:{name}' in configs")
    if plugins.broken:
        console.print(_broken_table(plugins))
    if plugins.disabled:
        console.print(f"disabled by SEROTINY_DISABLE_PLUGINS: {', '.join(plugins.disabled)}")
    return 0


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
        from serotiny_core.targets import import_object

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
