"""The ``serotiny`` command line.

``train``, ``test`` and ``predict`` hand their arguments to Hydra's own
parser, so every Hydra flag works. The other commands are plain argparse.
Errors a user can cause print one line and exit 2 (usage, config) or 1
(run time); ``--debug`` or ``HYDRA_FULL_ERROR=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from serotiny_core.cli_parser import RUN_COMMANDS, build_parser
from serotiny_core.errors import ConfigError, SerotinyError, one_line

DEBUG_HINT = "run with --debug for the traceback"
DEBUG_ENV = "SEROTINY_DEBUG"
# Hydra's flag, here for the whole program: `serotiny -sc install=bash`.
COMPLETION_FLAGS = ("-sc", "--shell-completion")


def _pop_flag(argv: list[str], flag: str) -> bool:
    found = flag in argv
    while flag in argv:
        argv.remove(flag)
    return found


def _list_components(args: argparse.Namespace) -> int:
    from serotiny_core.listing import list_components
    from serotiny_core.plugins import listed_plugins

    return list_components(listed_plugins(), kind=args.kind, as_json=args.json,
                           debug=os.environ.get(DEBUG_ENV) == "1")


def _show_component(args: argparse.Namespace) -> int:
    from serotiny_core.listing import show_component
    from serotiny_core.plugins import get_plugins

    return show_component(get_plugins(), args.name)


def _init(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.plugin is None):
        raise ConfigError("serotiny init takes a project NAME or --plugin NAME, not both or neither",
                          hint="e.g. 'serotiny init my_project' or 'serotiny init --plugin serotiny-my-models'")
    if args.plugin is not None:
        from serotiny_core.plugin_scaffold import init_plugin

        return init_plugin(args.plugin, description=args.description or "")
    from serotiny_core.scaffold import init_project

    return init_project(args.name, description=args.description or "a serotiny project")


def _check_plugin(args: argparse.Namespace) -> int:
    from serotiny_core.check_plugin import check_plugin

    return check_plugin(args.name, as_json=args.json)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list-components": _list_components,
    "show-component": _show_component,
    "init": _init,
    "check-plugin": _check_plugin,
}


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in COMPLETION_FLAGS:
        from serotiny_core.completion import shell_completion

        return shell_completion(argv[1:], debug=os.environ.get(DEBUG_ENV) == "1")
    if argv and argv[0] in RUN_COMMANDS:
        from serotiny_core.hydra_app import execute_command

        strict = _pop_flag(argv, "--strict")
        return execute_command(argv[0], argv[1:], strict=strict)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return HANDLERS[args.command](args)


def report(error: BaseException, debug: bool) -> int:
    """Print ``error`` as one line (or a traceback under --debug); return the exit code."""
    if debug:
        import traceback

        traceback.print_exception(error)
    if isinstance(error, SerotinyError):
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code

    print(f"error: {one_line(error)} ({DEBUG_HINT})", file=sys.stderr)
    return 1


def _debug_requested(args: list[str]) -> bool:
    """--debug, or HYDRA_FULL_ERROR=1 as Hydra users know it.

    The decision is passed on in SEROTINY_DEBUG to the processes a command
    starts (DDP ranks), which see the HYDRA_FULL_ERROR=1 serotiny sets for
    itself while Hydra runs.
    """
    inherited = os.environ.get(DEBUG_ENV)
    debug = _pop_flag(args, "--debug") or (
        inherited == "1" if inherited is not None else os.environ.get("HYDRA_FULL_ERROR") == "1")
    os.environ[DEBUG_ENV] = "1" if debug else "0"
    return debug


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``serotiny`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `serotiny list-components | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # every error reaches the user as one line
        from serotiny_core.hydra_errors import translate

        return report(translate(error), debug)


if __name__ == "__main__":
    sys.exit(main())
