"""Shared helpers for the ``bench/*.py`` scripts (not a benchmark itself).

Every benchmark measures serotiny and its baseline in the same run, in
alternation (A, B, A, B, ...) so that drift in the machine's speed (other
processes, CPU frequency, page cache) hits both alike, and reports medians
and ratios. Nothing here asserts a time: a missed goal is printed as
``MISSED``, never raised.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SEROTINY = str(BIN / "serotiny")
PYTHON = sys.executable


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: this one, minus what would skew a timing."""
    # PYTHONDONTWRITEBYTECODE is dropped: a normal install caches bytecode (pip
    # compiles at install time), so a fresh interpreter does not recompile sources.
    skip = ("PYTHONPATH", "HYDRA_FULL_ERROR", "SEROTINY_DEBUG", "PYTHONPROFILEIMPORTTIME",
            "PYTHONDONTWRITEBYTECODE", "SEROTINY_DISABLE_PLUGINS")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(extra or {})
    return env


def run_timed(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
              check: bool = True, timeout: float = 600) -> float:
    """Wall seconds of one subprocess, from just before spawning to its exit."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                           f"{proc.stderr.decode(errors='replace')[-3000:]}")
    return elapsed


def alternate(cases: Mapping[str, Callable[[], float | None]], repeats: int,
              warmup: int = 1) -> dict[str, list[float]]:
    """Run each case ``warmup`` times untimed, then ``repeats`` rounds in alternation.

    A case returns its own measurement (seconds, rows/s...) or None to have
    its wall time taken here.
    """
    for _ in range(warmup):
        for case in cases.values():
            case()
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            start = time.perf_counter()
            value = case()
            results[name].append(time.perf_counter() - start if value is None else value)
    return results


def paired_ratio(ours: Sequence[float], base: Sequence[float]) -> float:
    """Median of the per-round ratios: each round ran both cases back to back, so
    a slow spell of the machine divides out (sturdier than a ratio of medians)."""
    return median([a / b for a, b in zip(ours, base)])


def verdict(ratio: float, goal: float, higher_is_better: bool) -> str:
    met = ratio >= goal if higher_is_better else ratio <= goal
    sign = ">=" if higher_is_better else "<="
    return f"{sign} {goal:g}x: {'met' if met else 'MISSED'}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (what bench/README.md holds)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(row) for row in cells[1:])])


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    return f"{value / 1e3:.1f} k" if value >= 1e4 else f"{value:,.0f}"


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its reaped children."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """One line naming the machine and the software the numbers came from."""
    import importlib.metadata as md

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "-"

    return (f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
            f"torch {version('torch')}, pytorch-lightning {version('pytorch-lightning')}, "
            f"mlflow {version('mlflow')}, pandas {version('pandas')}, serotiny {version('serotiny')}")


FIRST_BATCH_STAMP = '''\
"""Appends the wall-clock time of each fit's first training batch to $BENCH_STAMP (for bench/)."""

import os
import time

from pytorch_lightning import Callback


class FirstBatchStamp(Callback):
    def __init__(self):
        self.done = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.done:
            self.done = True
            with open(os.environ["BENCH_STAMP"], "a") as out:
                out.write(repr(time.time()) + "\\n")
'''

# The bench project's config options (data=bench model=bench trainer=bench trainer/callbacks=bench).
BENCH_CONFIGS = {
    "data/bench.yaml": """\
        _target_: ManifestDatamodule
        path: ${project_root:}/data/bench.parquet
        split_column: split
        batch_size: %(batch)d
        num_workers: 0
        loaders:
          x:
            _target_: LoadColumns
            startswith: feature_
        """,
    "model/bench.yaml": """\
        _target_: TabularVAE
        x_dim: %(features)d
        latent_dim: %(latent)d
        hidden_layers: %(hidden)s
        x_label: x
        beta: 1.0
        optimizer:
          _partial_: true
          _target_: torch.optim.Adam
          lr: 1e-3
        """,
    "trainer/bench.yaml": """\
        defaults:
          - /defaults/trainer/default@_here_
          - _self_

        accelerator: cpu
        devices: 1
        max_epochs: %(epochs)d
        enable_progress_bar: false
        enable_model_summary: false
        log_every_n_steps: 50
        """,
    "trainer/callbacks/bench.yaml": """\
        - _target_: ModelCheckpoint
          save_last: true
          save_top_k: 0
        - _target_: %(project)s.stamp.FirstBatchStamp
        """,
}


def bench_project(where: Path, name: str, values: Mapping[str, object]) -> Path:
    """A project made by ``serotiny init NAME`` in ``where``, with the ``bench`` options filled in
    from ``values`` (batch, features, latent, hidden, epochs) and ``NAME.stamp.FirstBatchStamp``;
    returns the project's root."""
    import textwrap

    subprocess.run([SEROTINY, "init", name], cwd=where, env=clean_env(), check=True,
                   stdout=subprocess.DEVNULL)
    root = where / name
    for relative, text in BENCH_CONFIGS.items():
        (root / name / "config" / relative).write_text(textwrap.dedent(text) % {**values, "project": name})
    (root / name / "stamp.py").write_text(FIRST_BATCH_STAMP)
    return root


def write_manifest(path: Path, rows: int, features: int) -> None:
    """A parquet manifest: ``sample_id``, ``split`` (80/10/10) and ``features`` float32 columns
    ``feature_*`` drawn from 8 latent factors (something a VAE can learn)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    factors = rng.normal(size=(rows, 8))
    x = np.tanh(factors @ rng.normal(size=(8, features))) + 0.05 * rng.normal(size=(rows, features))
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"feature_{i}" for i in range(features)])
    frame.insert(0, "split", rng.choice(["train", "val", "test"], size=rows, p=[0.8, 0.1, 0.1]))
    frame.insert(0, "sample_id", [f"s{i:05d}" for i in range(rows)])
    frame.to_parquet(path, index=False)


def header(title: str) -> None:
    print(f"\n## {title}\n")
    print(f"machine: {machine()}\n")
    sys.stdout.flush()
