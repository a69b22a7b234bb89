"""``serotiny init --plugin NAME``: write a plugin distribution that installs, tests and checks at once.

The layout is the one the plugin guide describes: ``pyproject.toml`` with
the ``serotiny.plugins`` entry point, a hooks module, one model, loader and
callback following serotiny's conventions, their packaged configs, a README
and tests written on serotiny's pytest fixtures. Written offline, from the
template folder beside this module.
"""

from __future__ import annotations

from pathlib import Path

from serotiny_core import __version__
from serotiny_core.errors import ConfigError
from serotiny_core.scaffold import copy_template, new_folder, package_name

TEMPLATE = Path(__file__).parent / "plugin_template"
# Package names a plugin must not take: serotiny's own.
RESERVED = frozenset({"serotiny", "serotiny_core", "serotiny_plugins"})


def _names(package: str) -> tuple[str, str]:
    """The short name (configs, entry point) and the CamelCase prefix of component names:
    ``serotiny_cell_shapes`` -> ``cell_shapes``, ``CellShapes``."""
    short = package.removeprefix("serotiny_")
    if not short or not short[0].isalpha():
        short = package
    return short, "".join(part.capitalize() for part in short.split("_") if part)


def init_plugin(name: str, description: str = "", where: Path | None = None) -> int:
    """Write plugin distribution ``name`` into a new folder of that name."""
    package = package_name(name)
    if package in RESERVED:
        raise ConfigError(f"{name!r} would shadow serotiny's own package {package!r}",
                          hint="choose another name, e.g. 'serotiny-my-models'")
    root = new_folder(name, where)
    short, camel = _names(package)
    major = int(__version__.split(".")[0])
    values = {"{package}": package, "{name}": name, "{plugin}": short, "{short}": short,
              "{camel}": camel, "{description}": description or f"serotiny components: {short}",
              "{serotiny_version}": ".".join(__version__.split(".")[:2]),
              "{serotiny_next}": str(major + 1)}
    copy_template(TEMPLATE, root, values, {"PACKAGE": package, "SHORT": short})
    print(f"created {root}\n\n  cd {name}\n  pip install -e \".[test]\"\n  pytest\n"
          f"  serotiny check-plugin {short}")
    return 0
