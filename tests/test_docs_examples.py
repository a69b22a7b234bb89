"""The pages' commands run as written, and every documented error is the one printed.

Both lists of cases are read from the pages themselves, so a page and its
test cannot drift apart:

Runnable shell blocks (README.md and docs/*.md)
    Every shell block (```` ```console ````, ```` ```bash ````, ```` ```sh ````,
    and README's indented blocks) carries a comment on the line before it:
    ``% doc-test: run`` (MyST's comment; ``<!-- doc-test: run -->`` in
    README.md, which GitHub renders) or ``% doc-test: skip <why>`` (the
    network, a GPU, a cluster, a server that runs until stopped). The
    ``run`` blocks of a page are executed in order, like one shell session
    starting in a fresh project made by ``serotiny init demo`` (or, on a page
    that runs ``serotiny init`` itself, in an empty folder). In a block
    with ``$`` prompts only those lines are commands; an ``error: ...``
    line shown after a command is the error it must end with (``<...>`` and
    ``[...]`` and ``...`` match anything); any other command must exit 0.
    ``serotiny train`` runs with ``trainer.max_epochs=1``, sweeps over at most
    two values per key, Optuna searches of one trial (see ``docs_driver.py``).

Troubleshooting entries (docs/troubleshooting.md)
    An entry is a line holding one or more backticked messages containing
    ``error:``, then the exit code in parentheses, e.g.
    ```` `error: batch_size must be at least 1, got <n>` (2) ````. The
    comment lines right above it say how to trigger it: ``% try: COMMAND``
    (a shell line run in a fresh session at the root of an init project
    named ``proj``; ``A && B`` chains set-up steps before the ``serotiny``
    command; use ``++key=`` to set a key whether or not the config has it)
    or ``% untested: <why>`` (and which test covers it). The command must
    exit with the entry's code, and the last ``error:`` line it prints must
    match one of the entry's messages. To document a new error message: add
    the entry in this format with its ``% try:`` line; nothing here changes.

Every command runs the real CLI's ``main()`` in the test's process
(``docs_driver.py``): imports are paid once, not per command.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import docs_driver
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
SHELL_FENCES = ("console", "bash", "sh", "shell")
MARKER = re.compile(r"^(?:% |<!-- )doc-test: (run|skip\b.*?)(?: -->)?$")
ENTRY = re.compile(r"^`.*error:.*` \((\d+)\)$")


# -- reading the pages ----------------------------------------------------------------------

@dataclass
class Block:
    page: str
    line: int
    marker: str | None
    commands: list[tuple[str, str | None]] = field(default_factory=list)  # (command, error shown)


def _commands(lines: list[str]) -> list[tuple[str, str | None]]:
    """The block's commands and, for each, the ``error:`` line shown after it (if any)."""
    prompted = any(line.startswith("$ ") for line in lines)
    found: list[tuple[str, str | None]] = []
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():  # join continued lines
        if prompted and line.startswith("$ "):
            found.append((line[2:].strip(), None))
        elif prompted and line.startswith("error:") and found and found[-1][1] is None:
            found[-1] = (found[-1][0], line.strip())
        elif not prompted and line.strip() and not line.lstrip().startswith("#"):
            found.append((line.strip(), None))
    return found


def _marker(lines: list[str], index: int) -> str | None:
    for back in (1, 2):  # the line above, or the one above a blank line
        if index - back >= 0 and (match := MARKER.match(lines[index - back].strip())):
            return match.group(1)
        if index - back >= 0 and lines[index - back].strip():
            return None
    return None


def shell_blocks(page: Path) -> list[Block]:
    """Fenced shell blocks, and on README.md the indented ones (GitHub shows those as code)."""
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w+)\s*$", lines[i])
        indented = page.name == "README.md" and lines[i].startswith("    ") and (
            i == 0 or not lines[i - 1].strip()) and lines[i].strip()
        if fence or indented:
            start, body = i, []
            if fence:
                i += 1
                while not lines[i].startswith("```"):
                    body.append(lines[i])
                    i += 1
            else:
                while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                    body.append(lines[i][4:])
                    i += 1
            if not fence or fence.group(1) in SHELL_FENCES:
                blocks.append(Block(page.name, start + 1, _marker(lines, start), _commands(body)))
        elif lines[i].startswith("```"):  # another fenced block: skip it whole
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
        i += 1
    return blocks


@dataclass
class Entry:
    line: int
    messages: list[str]
    code: int
    tries: list[str]
    untested: str | None


def troubleshooting_entries() -> list[Entry]:
    lines = (DOCS / "troubleshooting.md").read_text().splitlines()
    entries = []
    for number, line in enumerate(lines):
        match = ENTRY.match(line)
        if not match:
            continue
        notes = []
        for above in reversed(lines[:number]):
            if not above.startswith("% "):
                break
            notes.insert(0, above[2:])
        tries = [n.removeprefix("try: ") for n in notes if n.startswith("try: ")]
        untested = next((n for n in notes if n.startswith("untested: ")), None)
        messages = [m for m in re.findall(r"`([^`]*error:[^`]*)`", line)]
        entries.append(Entry(number + 1, messages, int(match.group(1)), tries, untested))
    return entries


def pattern(shown: str) -> re.Pattern[str]:
    """A documented line as a regex: ``<...>``, ``[...]`` and ``...`` match anything, the rest
    is literal."""
    parts = re.split(r"(<[^<>]+>|\[\.\.\.\]|\.\.\.)", shown.strip())
    return re.compile("".join(".*?" if i % 2 else re.escape(p) for i, p in enumerate(parts)))


def printed_error(result: dict) -> str:
    """The last line the command printed that holds ``error:`` (argparse's start with ``serotiny:``)."""
    lines = [line for line in (result["err"] + result["out"]).splitlines() if "error:" in line]
    errors = [line for line in lines if line.startswith(("error:", "serotiny: error:"))]
    return errors[-1] if errors else ""


# -- running ---------------------------------------------------------------------------------

def drive(sessions: list[tuple[Path, list[str]]], fresh: bool = False) -> list[dict]:
    """Run each ``(folder, lines)`` session with :mod:`docs_driver`, in this process, as a
    user's shell would: the environment's ``bin`` first on ``PATH``, none of the suite's
    debugging variables. ``fresh``: each line alone, from the folder. The results of all
    lines, in order."""
    with pytest.MonkeyPatch.context() as shell:
        shell.setenv("PATH", str(Path(sys.executable).parent), prepend=os.pathsep)
        for inherited in ("HYDRA_FULL_ERROR", "SEROTINY_DEBUG"):
            shell.delenv(inherited, raising=False)
        return [result for cwd, lines in sessions for result in docs_driver.session(cwd, lines, fresh)]


def init(where: Path, name: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    made = run_cli("init", name, cwd=where)
    assert made.code == 0, made.text
    return where / name


# -- the tests -------------------------------------------------------------------------------

def test_every_shell_block_says_whether_it_runs():
    unmarked = [f"{b.page}:{b.line}" for page in PAGES for b in shell_blocks(page) if b.marker is None]
    assert not unmarked, f"mark these '% doc-test: run' or '% doc-test: skip <why>': {unmarked}"


def _runnable(page: Path) -> list[Block]:
    return [b for b in shell_blocks(page) if b.marker == "run"]


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if _runnable(p)], ids=lambda p: p.name)
def test_runnable_blocks_run_as_written(page, tmp_path):
    blocks = _runnable(page)
    commands = [(block, *command) for block in blocks for command in block.commands]
    lines = [command for _, command, _ in commands]
    makes_its_own = any(line.startswith("serotiny init ") for line in lines)
    results = drive([(tmp_path if makes_its_own else init(tmp_path, "demo"), lines)])
    failed = []
    for (block, command, shown), result in zip(commands, results):
        where, printed = f"{block.page}:{block.line}: $ {command}", printed_error(result)
        if shown is None and result["code"] != 0:
            failed.append(f"{where}\n  exit {result['code']}: {printed or result['err'][-800:]}")
        elif shown is not None and not (result["code"] != 0 and pattern(shown).fullmatch(printed)):
            failed.append(f"{where}\n  page:    {shown}\n  printed: {printed} (exit {result['code']})")
    assert not failed, "\n".join(failed)


def test_every_troubleshooting_entry_is_tried_or_says_why_not():
    entries = troubleshooting_entries()
    assert len(entries) > 40
    bare = [e.line for e in entries if not e.tries and not e.untested]
    assert not bare, f"troubleshooting.md lines {bare}: add '% try: serotiny ...' or '% untested: <why>'"


@pytest.mark.slow
def test_troubleshooting_messages_are_the_ones_printed(tmp_path):
    entries = [e for e in troubleshooting_entries() if e.tries]
    tries = [(entry, line) for entry in entries for line in entry.tries]
    lines = [line for _, line in tries]
    results = drive([(init(tmp_path, "proj"), lines)], fresh=True)
    failed = []
    for (entry, line), result in zip(tries, results):
        printed = printed_error(result)
        matches = any(pattern(message).fullmatch(printed) for message in entry.messages)
        spurious = [w for w in result["out"].splitlines() if "MLflow stopped answering" in w]
        if result["code"] != entry.code or not matches or spurious:
            failed.append(f"troubleshooting.md:{entry.line}: % try: {line}\n"
                          f"  page:    {' / '.join(entry.messages)} ({entry.code})\n"
                          f"  printed: {printed} ({result['code']}) {' '.join(spurious)}")
    assert not failed, "\n".join(failed)
