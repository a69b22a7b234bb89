"""The table printed after a multirun: one row per job."""

from __future__ import annotations

import math
from typing import Any, Sequence


def _value(result: Any) -> str:
    if result.objective is None or math.isnan(result.objective):
        return "-"
    return f"{result.objective:.6g}"


def print_multirun_summary(results: Sequence[Any]) -> None:
    """Job number, overrides, final monitored metric and MLflow run id of each job."""
    from rich.console import Console
    from rich.table import Table

    metric = next((r.metric for r in results if r.metric), "metric")
    table = Table(title="multirun summary", title_justify="left")
    for column in ("job", "overrides", metric, "run id", "output"):
        table.add_column(column)
    for result in sorted(results, key=lambda r: r.job):
        table.add_row(str(result.job), " ".join(result.overrides), _value(result),
                      result.run_id or "-", str(result.output_dir))
    Console(width=200).print(table)
