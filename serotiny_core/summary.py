"""The table printed after a multirun: one row per job.

Each job writes what it ran and what it got (``result.json``) into its own
output folder; the table is read back from those files. That one path
works whatever runs the jobs: in this process (Hydra's basic launcher),
worker processes (joblib) or other machines (submitit on SLURM, where the
sweep folder is on a shared filesystem), and whatever the sweeper gets
back (Optuna only gets the objective).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

RESULT_FILE = "result.json"
RUN_ID_WIDTH = 32  # an MLflow run id
LOG_WIDTH = 160


def write_result(result: Any) -> Path:
    """Save a job's ``JobResult`` (a dataclass) as ``result.json`` in its output folder."""
    path = Path(result.output_dir) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result), default=str, indent=2))
    return path


def result_files(sweep_dir: Path) -> dict[Path, int]:
    """Every ``result.json`` under a sweep folder, with its modification time (ns)."""
    if not sweep_dir.is_dir():
        return {}
    return {path: path.stat().st_mtime_ns for path in sweep_dir.rglob(RESULT_FILE)}


def read_results(sweep_dir: Path, before: Mapping[Path, int]) -> list[dict[str, Any]]:
    """The results written since ``before`` was taken (a reused sweep folder keeps old ones)."""
    now = result_files(sweep_dir)
    fresh = [path for path, mtime in now.items() if before.get(path) != mtime]
    return [json.loads(path.read_text()) for path in fresh]


def _value(result: Mapping[str, Any]) -> str:
    objective = result.get("objective")
    if objective is None or math.isnan(objective):
        return "-"
    return f"{objective:.6g}"


def summary_rows(results: Sequence[Mapping[str, Any]]) -> tuple[str, list[list[str]]]:
    """The metric's name and one row per job (job, overrides, value, run id), by job number."""
    metric = next((r["metric"] for r in results if r.get("metric")), "metric")
    rows = [[str(r["job"]), " ".join(r["overrides"]), _value(r), r.get("run_id") or "-"]
            for r in sorted(results, key=lambda r: r["job"])]
    return metric, rows


def write_summary_files(results: Sequence[Mapping[str, Any]], folder: Path) -> list[Path]:
    """The summary table as ``summary.csv`` and ``summary.md`` in ``folder`` (a sweep's parent
    run keeps them as artifacts)."""
    import csv

    metric, rows = summary_rows(results)
    header = ["job", "overrides", metric, "run id"]
    csv_path, md_path = folder / "summary.csv", folder / "summary.md"
    with csv_path.open("w", newline="") as stream:
        csv.writer(stream).writerows([header, *rows])
    lines = [header, ["---"] * len(header), *rows]
    md_path.write_text("".join(_markdown_row(line) for line in lines))
    return [csv_path, md_path]


def _markdown_row(cells: Sequence[str]) -> str:
    escaped = [cell.replace("|", "\\|") for cell in cells]
    return f"| {' | '.join(escaped)} |\n"


def print_multirun_summary(results: Sequence[Mapping[str, Any]], sweep_dir: Path) -> None:
    """Job number, overrides, final monitored metric and MLflow run id of each job.

    Only the overrides column wraps: run ids stay whole, to copy. Logs
    (not a terminal) get a wide table.
    """
    from rich.console import Console
    from rich.table import Table

    metric, rows = summary_rows(results)
    table = Table(title="multirun summary", title_justify="left",
                  caption=f"job folders under {sweep_dir}", caption_justify="left")
    table.add_column("job", no_wrap=True)
    table.add_column("overrides", overflow="fold")
    table.add_column(metric, no_wrap=True)
    table.add_column("run id", no_wrap=True, min_width=RUN_ID_WIDTH)
    for row in rows:
        table.add_row(*row)
    console = Console()
    (console if console.is_terminal else Console(width=LOG_WIDTH)).print(table)
