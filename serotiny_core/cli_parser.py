"""The ``serotiny`` command line's grammar: its subcommands and their flags.

Kept apart from :mod:`serotiny_core.cli`, which runs the commands, because
shell completion (:mod:`serotiny_core.completion`) reads the same grammar
to offer candidates, and the CLI in turn dispatches to completion: with the
grammar here, neither of the two imports the other.
"""

from __future__ import annotations

import argparse

from serotiny_core import __version__

RUN_COMMANDS = {
    "train": "compose train.yaml, fit, and test when test_after_fit is true",
    "test": "test a checkpoint (ckpt_path=... or an MLflow run)",
    "predict": "predict with a checkpoint and write predictions as parquet",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; run commands are listed here but parsed by Hydra."""
    parser = argparse.ArgumentParser(
        prog="serotiny",
        description="Plugin-based ML projects: Hydra configs, Lightning training, MLflow tracking.",
        epilog="Add --debug to any command to see tracebacks.")
    parser.add_argument("--version", action="version", version=f"serotiny {__version__}")
    parser.add_argument("-sc", "--shell-completion", metavar="install=SHELL",
                        help="print the completion script of bash, zsh or fish: "
                             "eval \"$(serotiny -sc install=bash)\"")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in RUN_COMMANDS.items():
        commands.add_parser(name, help=f"{text}; takes Hydra overrides and flags",
                            add_help=False)
    listing = commands.add_parser("list-components", help="every registered component")
    listing.add_argument("--kind", help="only this kind (model, datamodule, loader, callback, ...)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of tables")
    show = commands.add_parser("show-component", help="signature, docstring and YAML skeleton")
    show.add_argument("name", help="a registered name or alias, or a dotted import path")
    init = commands.add_parser("init", help="scaffold a new project, or a plugin with --plugin")
    init.add_argument("name", nargs="?", help="the project folder and package name")
    init.add_argument("--plugin", metavar="NAME",
                      help="scaffold plugin distribution NAME instead (e.g. serotiny-my-models)")
    init.add_argument("--description", help="one line for the README and pyproject.toml")
    check = commands.add_parser("check-plugin", help="check an installed plugin: imports, configs, "
                                "loaders, one batch per model")
    check.add_argument("name", help="the plugin's entry point name or its distribution name")
    check.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    return parser
