"""Write the generated parts of the docs before Sphinx reads any page.

* ``_generated/components.md``: every built-in component, from the plugin
  registry (:func:`serotiny_core.plugins.get_plugins`): kind, aliases,
  target, signature, the docstring's first paragraph and the YAML skeleton
  that ``serotiny show-component`` prints.
* ``_generated/configs.md``: every config file the built-in plugin packages
  (``serotiny_config_dirs()``), by group, verbatim.
* ``_generated/cli.md``: the ``--help`` of every command, from the parsers
  the CLI itself uses (``serotiny_core.cli_parser.build_parser`` and Hydra's).

The pages ``components.md`` and ``cli.md`` include these fragments. Files
are rewritten only when their text changes, so incremental builds stay
incremental and parallel builds of one checkout do not race.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from serotiny_core.component import KNOWN_KINDS, Component
from serotiny_core.listing import skeleton
from serotiny_core.plugins import BUILTIN_DISTRIBUTION, Plugins, get_plugins
from serotiny_core.registry import Registry
from serotiny_core.imports import import_object

GENERATED = "_generated"
HELP_WIDTH = "88"
KIND_TITLES = {"model": "Models", "datamodule": "Datamodules", "loader": "Loaders",
               "callback": "Callbacks"}
GROUP_ORDER = ("data", "model", "trainer", "trainer/callbacks", "mlflow", "defaults", "hydra")


# -- helpers ---------------------------------------------------------------------------------

def write_if_changed(path: Path, text: str) -> None:
    """Replace ``path`` atomically, and only when its text differs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(staging, path)


def fence(text: str, language: str = "text") -> str:
    """A fenced block long enough never to be closed by the text inside it."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}\n"


def _annotation(annotation: Any) -> str:
    if isinstance(annotation, str):  # ``from __future__ import annotations``
        return annotation
    return inspect.formatannotation(annotation)


def _default(value: Any) -> str:
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def signature_block(name: str, obj: Any) -> str:
    """``Name(\\n    param: type = default,\\n    ...)``, one parameter a line."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    lines = []
    for param in signature.parameters.values():
        text = param.name
        if param.kind is param.VAR_POSITIONAL:
            text = f"*{text}"
        elif param.kind is param.VAR_KEYWORD:
            text = f"**{text}"
        if param.annotation is not param.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not param.empty:
            text += f" = {_default(param.default)}"
        lines.append(f"    {text},")
    return f"{name}(\n" + "\n".join(lines) + "\n)" if lines else f"{name}()"


def first_paragraph(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n", 1)[0].strip()


# -- components ------------------------------------------------------------------------------

def builtin_components(plugins: Plugins) -> list[Component]:
    registry = Registry(c for c in plugins.components if c.distribution == BUILTIN_DISTRIBUTION)
    return registry.components()


def config_files(plugins: Plugins) -> list[tuple[str, str, str]]:
    """(group, option, text) of every YAML file the built-in plugin packages."""
    found: list[tuple[str, str, str]] = []
    for info, source in plugins.config_dirs:
        if info.distribution != BUILTIN_DISTRIBUTION or not source.startswith("pkg://"):
            continue
        root = package_folder(source.removeprefix("pkg://"))
        if root is None:
            continue
        for path in _yaml_files(root):
            relative = path.relative_to(root)
            group = "/".join(relative.parts[:-1])
            found.append((group, relative.stem, path.read_text(encoding="utf-8")))
    return found


def package_folder(spec: str) -> Path | None:
    """The folder of a Hydra ``pkg://`` source (``package.sub`` or ``package/sub``), unimported."""
    import importlib.util

    module, _, sub = spec.partition("/")
    parts = module.split(".")
    found = importlib.util.find_spec(parts[0])
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(list(found.submodule_search_locations)[0]).joinpath(*parts[1:], *filter(None, sub.split("/")))
    return folder if folder.is_dir() else None


def _yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())


def _group_rank(group: str) -> tuple[int, str]:
    for rank, prefix in enumerate(GROUP_ORDER):
        if group == prefix or group.startswith(prefix + "/"):
            return rank, group
    return (len(GROUP_ORDER) if group else -1), group


def uses_of(target_names: set[str], configs: list[tuple[str, str, str]]) -> list[str]:
    """The packaged configs whose ``_target_`` names this component."""
    uses = []
    for group, option, text in configs:
        for line in text.splitlines():
            key, _, value = line.strip().lstrip("- ").partition(":")
            if key == "_target_" and value.strip().strip("'\"") in target_names:
                uses.append(f"{group}/{option}.yaml" if group else f"{option}.yaml")
                break
    return uses


def components_markdown(plugins: Plugins) -> str:
    components = builtin_components(plugins)
    configs = config_files(plugins)
    kinds = [k for k in KNOWN_KINDS if any(c.kind == k for c in components)]
    kinds += sorted({c.kind for c in components} - set(kinds))
    out = ["<!-- generated by docs/_ext/serotiny_docs.py from the plugin registry: do not edit -->\n"]
    for kind in kinds:
        out.append(f"## {KIND_TITLES.get(kind, kind.title() + 's')}\n")
        for component in (c for c in components if c.kind == kind):
            out.append(component_markdown(component, configs))
    return "\n".join(out)


def component_markdown(component: Component, configs: list[tuple[str, str, str]]) -> str:
    obj = import_object(component.target)
    names = [component.name, *component.aliases]
    lines = [f"### {component.name}\n",
             f"{component.description}\n" if component.description else "",
             f"- **kind**: `{component.kind}`",
             f"- **target**: `{component.target}`",
             f"- **names in configs**: {', '.join(f'`{n}`' for n in names)}"]
    used = uses_of({*names, component.target}, configs)
    if used:
        lines.append(f"- **packaged configs**: {', '.join(f'`{u}`' for u in used)}")
    lines.append("")
    lines.append(fence(signature_block(component.name, obj), "python"))
    summary = first_paragraph(obj)
    if summary:
        lines.append(fence(summary, "{eval-rst}"))
    lines.append("YAML skeleton (`???` marks a required argument):\n")
    lines.append(fence(skeleton(component.name, obj), "yaml"))
    return "\n".join(lines)


def configs_markdown(plugins: Plugins) -> str:
    configs = sorted(config_files(plugins), key=lambda c: (_group_rank(c[0]), c[1]))
    out = ["<!-- generated by docs/_ext/serotiny_docs.py from serotiny_config_dirs(): do not edit -->\n"]
    current = None
    for group, option, text in configs:
        if group != current:
            out.append(f"### `{group or '(top level)'}`\n")
            current = group
        name = f"{group}/{option}.yaml" if group else f"{option}.yaml"
        select = f"`{group}={option}`" if group and group.split("/")[0] not in ("defaults",) else None
        out.append(f"**{name}**" + (f" (select with {select})" if select else "") + "\n")
        out.append(fence(text, "yaml"))
    return "\n".join(out)


# -- the command line ------------------------------------------------------------------------

@contextlib.contextmanager
def help_width() -> Iterator[None]:
    """argparse wraps help at $COLUMNS: pin it so the page is the same on every machine."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        yield
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def hydra_help(prog: str) -> str:
    """The help of Hydra's own parser, which ``train``/``test``/``predict`` hand their arguments to."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.prog = prog
    for action in parser._actions:
        if "--shell-completion" in action.option_strings:
            # Hydra's text names the interpreter that builds these docs: say it plainly instead.
            action.help = ("Install or uninstall Hydra's shell completion, e.g. -sc install=bash "
                           "or -sc uninstall=fish")
        elif action.help is not None and not isinstance(action.help, str):
            action.help = str(action.help)  # a lazy help object argparse cannot format
    return parser.format_help()


def cli_markdown() -> str:
    from serotiny_core.cli_parser import RUN_COMMANDS, build_parser

    with help_width():
        parser = build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        out = ["<!-- generated by docs/_ext/serotiny_docs.py from the CLI's parsers: do not edit -->\n",
               "## `serotiny`\n", fence("$ serotiny --help\n" + parser.format_help())]
        for name, text in RUN_COMMANDS.items():
            out.append(f"## `serotiny {name}`\n")
            out.append(f"{text[0].upper()}{text[1:]}. The arguments go to Hydra's parser; "
                       "serotiny adds `--strict` and `--debug` (see above). "
                       f"`serotiny {name} --help` prints the project's config groups and composed "
                       f"`{name}.yaml`; `--hydra-help` prints Hydra's own help.\n")
            out.append(fence(hydra_help(f"serotiny {name}")))
        for name, sub in commands.choices.items():
            if name in RUN_COMMANDS:
                continue
            out.append(f"## `serotiny {name}`\n")
            out.append(fence(f"$ serotiny {name} --help\n" + sub.format_help()))
    return "\n".join(out)


# -- Sphinx ----------------------------------------------------------------------------------

def generate(srcdir: Path) -> None:
    plugins = get_plugins()
    folder = srcdir / GENERATED
    write_if_changed(folder / "components.md", components_markdown(plugins))
    write_if_changed(folder / "configs.md", configs_markdown(plugins))
    write_if_changed(folder / "cli.md", cli_markdown())


def _on_builder_inited(app: Any) -> None:
    generate(Path(app.srcdir))


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
