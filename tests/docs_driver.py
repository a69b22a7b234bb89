"""Run documented shell commands as a user would: :func:`session`.

A session is a start folder and a list of command lines. They run in order,
as one shell session would (or, with ``fresh``, each from the start folder):
``cd DIR`` changes the folder for the lines after it, ``A && B`` runs B when
A succeeded, ``serotiny ...`` runs the real CLI's ``main()`` in this process
(imported once: seconds saved per command, which is what lets the suite
afford every documented command; the suite's own runner leaves the process
as it was after each), anything else runs in bash. ``serotiny train`` gets
``trainer.max_epochs=1`` in place of any epoch count, a sweep (``-m``) at
most two values per swept key (``model.latent_dim=2,4,8`` runs 2 and 4) and
an Optuna search one trial, so documented trainings stay short.

Per command line it gives its exit code, what it printed and how long it took.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

EPOCHS = "trainer.max_epochs=1"
TRIALS = "hydra.sweeper.n_trials=1"


def _two_values(override: str) -> str:
    """``key=a,b,c`` -> ``key=a,b``: a sweep still sweeps, over fewer jobs."""
    key, _, value = override.partition("=")
    if not value or any(c in value for c in "[](){}'\""):
        return override
    return f"{key}={','.join(value.split(',')[:2])}"


def short_training(argv: list[str]) -> list[str]:
    """``serotiny train ...`` with one epoch, a sweep over at most two values per key and
    an Optuna search of one trial, whatever counts the page chose."""
    if not argv or argv[0] != "train":
        return argv
    short = [EPOCHS]
    if any(a.startswith("hydra/sweeper=") for a in argv):
        short.append(TRIALS)
    keys = tuple(s.split("=")[0] + "=" for s in short)
    kept = [a for a in argv if not a.startswith(keys)]
    if "-m" in kept or "--multirun" in kept:
        kept = [_two_values(a) for a in kept]
    # Beside the page's own overrides: Hydra's parser takes them as one run of arguments.
    first = next((i for i, a in enumerate(kept) if "=" in a or a.startswith(("~", "+"))), len(kept))
    return [*kept[:first], *short, *kept[first:]]


def serotiny(argv: list[str]) -> tuple[int, str, str]:
    """The CLI in this process, left as it was after each command (the suite's own runner)."""
    from serotiny_core.pytest_plugin import run_command

    return run_command(tuple(short_training(argv)), Path.cwd(), {})


def expanded(command: str) -> list[str]:
    """The command's words, with ``$VAR``, ``$(...)`` and globs expanded by bash where it has them."""
    if not any(c in command for c in "$*?"):
        return shlex.split(command, comments=True)
    done = subprocess.run(["bash", "-c", f"printf '%s\\0' {command}"], capture_output=True, text=True)
    return done.stdout.split("\0")[:-1]


def step(command: str) -> tuple[int, str, str]:
    words = expanded(command)
    if words and words[0] == "cd":
        os.chdir(os.path.expanduser(words[1] if len(words) > 1 else "~"))
        return 0, "", ""
    if words and words[0] == "serotiny":
        return serotiny(words[1:])
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


def run_line(line: str) -> dict:
    started = time.monotonic()
    code, out, err = 0, "", ""
    for command in line.split(" && "):
        code, more_out, more_err = step(command)
        out, err = out + more_out, err + more_err
        if code != 0:
            break
    return {"line": line, "code": code, "out": out[-4000:], "err": err[-4000:],
            "seconds": round(time.monotonic() - started, 1)}


def session(cwd: Path, lines: list[str], fresh: bool = False) -> list[dict]:
    """Run ``lines`` from ``cwd`` (``fresh``: each from ``cwd``); the working folder is
    restored after."""
    saved = os.getcwd()
    os.chdir(cwd)
    try:
        results = []
        for line in lines:
            if fresh:
                os.chdir(cwd)
            results.append(run_line(line))
        return results
    finally:
        os.chdir(saved)
