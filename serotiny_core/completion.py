"""``serotiny -sc install=bash|zsh|fish``: Hydra's shell completion for a program with subcommands.

The install scripts are Hydra's own: each asks the program for candidates
with ``serotiny -sc query=SHELL``, passing the line typed so far in
``COMP_LINE`` (and, for bash, the cursor in ``COMP_POINT``). Answering
that query is serotiny's part: while the subcommand is being typed it
offers the subcommands; after ``train``, ``test`` or ``predict`` it hands
the rest of the line to Hydra's completion for that mode, run inside the
project (its groups, every plugin's options, every registered component's
generated option, the composed config's keys); after another subcommand it
offers that subcommand's flags (and component names for ``show-component``).

A query prints candidates and nothing else: a failure (outside a project, a
config that does not compose) prints no candidates rather than an error
over the user's prompt; ``--debug`` in ``SEROTINY_DEBUG`` shows it.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from serotiny_core.errors import ConfigError

ACTIONS = ("install", "uninstall", "query")
# serotiny's own flags, which Hydra's parser of the completed line would refuse.
SEROTINY_FLAGS = ("--debug", "--strict")
CONFIG_DIR_FLAGS = ("-cd", "--config-dir")
SHELL_HINT = "choose one of bash, zsh, fish, e.g. eval \"$(serotiny -sc install=bash)\""


def _request(args: list[str]) -> tuple[str, str]:
    """``["install=bash"]`` -> ``("install", "bash")``; anything else is a usage error."""
    action, _, shell = args[0].partition("=") if len(args) == 1 else ("", "", "")
    if action not in ACTIONS or not shell:
        raise ConfigError(f"-sc takes one of install=SHELL, uninstall=SHELL, query=SHELL, got {args!r}",
                          hint=SHELL_HINT)
    return action, shell


def _shell_plugin(shell: str) -> Any:
    """Hydra's completion plugin for ``shell``."""
    from hydra._internal.hydra import Hydra

    plugins = Hydra.get_shell_to_plugin_map(None)  # type: ignore[arg-type]  # install needs no config
    if shell not in plugins:
        raise ConfigError(f"no shell completion for {shell!r}", hint=SHELL_HINT)
    return plugins[shell][0]


def _typed(line: str, point: str | None) -> tuple[list[str], bool]:
    """The words after the program name, up to the cursor, and whether a new word starts."""
    if point is not None and point.isdigit():
        line = line[:int(point)]
    rest = re.sub(r"^\s*\S+\s?", "", line, count=1) if line.strip() else ""
    words = [w for w in rest.split() if w not in SEROTINY_FLAGS]
    return words, rest == "" or rest[-1].isspace()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags_and_names(command: str, parser: argparse.ArgumentParser) -> list[str]:
    """What a non-run subcommand takes: its flags, and component names for show-component."""
    found = [s for a in parser._actions for s in a.option_strings]
    if command == "show-component":
        from serotiny_core.plugins import listed_plugins

        found += [c.name for c in listed_plugins().components]
    return found


def _config_dir(words: list[str]) -> list[str]:
    """``-cd DIR`` as typed, so the query composes in the folder the command would."""
    for flag, value in zip(words, words[1:]):
        if flag in CONFIG_DIR_FLAGS:
            return [flag, value]
    return []


def _query_hydra_command(shell: str, command: str, words: list[str], new_word: bool) -> None:
    """Hydra's completion of ``serotiny <command> ...``, seen by Hydra as a program of its own."""
    from serotiny_core.hydra_app import execute_command

    os.environ["COMP_LINE"] = " ".join(["serotiny", *words]) + (" " if new_word else "")
    os.environ.pop("COMP_POINT", None)
    execute_command(command, [*_config_dir(words), "-sc", f"query={shell}"])


def _query(shell: str) -> None:
    from serotiny_core.cli_parser import RUN_COMMANDS, build_parser

    words, new_word = _typed(os.environ.get("COMP_LINE", ""), os.environ.get("COMP_POINT"))
    parser = build_parser()
    commands = _subcommands(parser)
    if not words or (len(words) == 1 and not new_word):
        candidates = [*commands, "--help", "--version"]
    elif words[0] in RUN_COMMANDS:
        _query_hydra_command(shell, words[0], words[1:], new_word)
        return
    elif words[0] in commands:
        candidates = _flags_and_names(words[0], commands[words[0]])
    else:
        candidates = []
    word = "" if new_word or not words else words[-1]
    print(("\n" if shell == "fish" else " ").join(c for c in candidates if c.startswith(word)))


def shell_completion(args: list[str], debug: bool = False) -> int:
    """``serotiny -sc ACTION=SHELL``; a failed query answers nothing (exit 1) unless ``debug``."""
    action, shell = _request(args)
    plugin = _shell_plugin(shell)
    if action != "query":
        getattr(plugin, action)()
        return 0
    try:
        _query(shell)
    except Exception:
        if debug:
            raise
        return 1
    return 0
