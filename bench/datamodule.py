"""``ManifestDatamodule`` throughput and setup memory against hand-written loops.

Goals (issue 8), rows/s over one epoch of the shuffled train split of a
parquet manifest (100 float32 features; 80/10/10 train/val/test), batch 256:

- >= 4x ``DataLoader(TensorDataset(x), batch_size=256, shuffle=True)``
  (per-item indexing plus collate);
- >= 0.5x the physical floor: a bare loop gathering ``x[perm[i:i+256]]``
  from one in-memory tensor (the permutation included);
- >= 100x a per-row pandas ``Dataset`` (``df.iloc[i]``), the way serotiny
  0.0.9 loaded rows. That one is far too slow for whole epochs: it is timed
  on its first batches only and its rate extrapolated (said in the table).

Every loader iterates in this process with ``num_workers=0``; the tensor
baselines get the train rows as one contiguous float32 tensor.

Peak memory of ``ManifestDatamodule.setup("fit")`` on 1M x 100 float32
(goal <= 1.5x the raw feature array, 400 MB) is measured in a fresh
subprocess: after its imports, the peak-RSS mark is reset
(``/proc/self/clear_refs``, Linux; else ``getrusage`` maxrss minus the RSS
after imports), so the peak counts setup alone, arrow's and numpy's
allocations included, which ``tracemalloc`` would miss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import PYTHON, alternate, clean_env, header, median, paired_ratio, rate, table, verdict

FEATURES, BATCH = 100, 256
SIZES = {"100k": 100_000, "1M": 1_000_000}
REPEATS = {"100k": 5, "1M": 3}
WARMUP = {"100k": 1, "1M": 0}  # the 100k round warms every code path already
PANDAS_BATCHES = 8  # batches the per-row pandas Dataset is timed on
# One intra-op thread for every loader alike: on a 2-core machine shared with
# other processes, torch's default (a thread per core) made the floor's
# ``x[perm]`` ~17x slower (OpenMP threads spinning against each other: 60 k
# instead of 1,040 k rows/s), which measured the machine's load, not the loaders.
THREADS = int(os.environ.get("OMP_NUM_THREADS", "1"))

MEMORY_SCRIPT = '''\
import json, os, resource, sys

import numpy, pandas, pyarrow.parquet, torch, pytorch_lightning  # noqa: F401  (imports are not setup)
from serotiny_plugins.datamodule import ManifestDatamodule
from serotiny_plugins.loaders import LoadColumns


def rss_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (the peak RSS) to the current RSS
        return True
    except OSError:
        return False


resettable = reset_peak()
before = rss_mb("VmRSS")
maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
dm = ManifestDatamodule(sys.argv[1], loaders={"x": LoadColumns(startswith="feature_")},
                        split_column="split", batch_size=256)
dm.manifest  # the read alone
read_peak = rss_mb("VmHWM") if resettable else None
dm.setup("fit")
peak = rss_mb("VmHWM") if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
after = rss_mb("VmRSS")
import pyarrow
pyarrow.default_memory_pool().release_unused()  # what arrow's allocator kept after freeing
released = rss_mb("VmRSS")
print(json.dumps({"before": before, "read_peak": read_peak, "peak": peak, "after": after,
                  "released": released, "pool": pyarrow.default_memory_pool().backend_name,
                  "resettable": resettable, "maxrss_before": maxrss_before}))
'''


def write_manifest(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    columns = {"split": pa.array(rng.choice(["train", "val", "test"], size=rows, p=[0.8, 0.1, 0.1]))}
    for i in range(FEATURES):
        columns[f"feature_{i}"] = pa.array(rng.standard_normal(rows, dtype=np.float32))
    pq.write_table(pa.table(columns), path)


def epoch(loader) -> None:
    for _ in loader:
        pass


def bench_size(label: str, path: Path) -> list[list[str]]:
    import pandas as pd
    import torch
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    from serotiny_plugins.datamodule import ManifestDatamodule
    from serotiny_plugins.loaders import LoadColumns

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    start = time.perf_counter()
    dm = ManifestDatamodule(path, loaders={"x": LoadColumns(startswith="feature_")},
                            split_column="split", batch_size=BATCH)
    dm.setup("fit")
    setup_s = time.perf_counter() - start
    frame = pd.read_parquet(path)
    train_rows = np.flatnonzero(frame["split"].to_numpy() == "train")
    features = [c for c in frame.columns if c.startswith("feature_")]
    # The baselines' data: the train rows as one contiguous float32 tensor, as a user would make it.
    x = torch.from_numpy(np.ascontiguousarray(frame.iloc[train_rows][features].to_numpy(np.float32)))
    n = len(x)
    assert len(dm.train_dataloader().dataset) == n

    class PandasRows(Dataset):
        """serotiny 0.0.9: one ``df.iloc[i]`` per item, the loader reading columns off the row."""

        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> dict:
            row = frame.iloc[int(train_rows[i])]
            return {"x": torch.from_numpy(row[features].to_numpy(dtype=np.float32))}

    def serotiny() -> float:
        start = time.perf_counter()
        epoch(dm.train_dataloader())
        return n / (time.perf_counter() - start)

    def tensor_dataset() -> float:
        start = time.perf_counter()
        epoch(DataLoader(TensorDataset(x), batch_size=BATCH, shuffle=True))
        return n / (time.perf_counter() - start)

    def floor() -> float:
        start = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(0, n, BATCH):
            x[perm[i:i + BATCH]]
        return n / (time.perf_counter() - start)

    def pandas_rows() -> float:
        start = time.perf_counter()
        loader = iter(DataLoader(PandasRows(), batch_size=BATCH, shuffle=True))
        for _ in range(PANDAS_BATCHES):
            next(loader)
        return PANDAS_BATCHES * BATCH / (time.perf_counter() - start)

    cases = {"serotiny": serotiny, "tensor": tensor_dataset, "floor": floor, "pandas": pandas_rows}
    runs = alternate(cases, REPEATS[label], warmup=WARMUP[label])
    rates = {k: median(v) for k, v in runs.items()}
    ours = rates["serotiny"]

    def paired(name: str) -> str:
        ratio = paired_ratio(runs["serotiny"], runs[name])
        return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.2f}x"

    return [
        [f"`ManifestDatamodule`, {label} ({n:,} train rows; setup {setup_s:.1f} s)", rate(ours),
         "-", "-", "-"],
        [f"(a) `DataLoader(TensorDataset(x), shuffle=True)`, {label}", rate(rates["tensor"]),
         f"{ours / rates['tensor']:.2f}x", paired("tensor"), verdict(ours / rates["tensor"], 4, True)],
        [f"(b) floor: `x[perm[i:i+256]]` loop, {label}", rate(rates["floor"]),
         f"{ours / rates['floor']:.2f}x", paired("floor"), verdict(ours / rates["floor"], 0.5, True)],
        [f"(c) per-row pandas `df.iloc[i]` Dataset, {label} (first {PANDAS_BATCHES} batches, "
         f"extrapolated)", rate(rates["pandas"]), f"{ours / rates['pandas']:.0f}x", paired("pandas"),
         verdict(ours / rates["pandas"], 100, True)],
    ]


def memory(path: Path, tmp: Path) -> list[list[str]]:
    script = tmp / "memory.py"
    script.write_text(MEMORY_SCRIPT)
    out = subprocess.run([PYTHON, str(script), str(path)], env=clean_env(), capture_output=True,
                         text=True, check=True).stdout
    m = json.loads(out.strip().splitlines()[-1])
    raw = SIZES["1M"] * FEATURES * 4 / 2**20
    peak = m["peak"] - m["before"]
    kept = m["after"] - m["before"]
    how = "VmHWM after clear_refs" if m["resettable"] else "ru_maxrss minus RSS after imports"
    rows = [
        ["raw feature array, 1M x 100 float32 (baseline)", f"{raw:.0f} MB", "1.00x", "baseline"],
        [f"peak RSS over `setup(\"fit\")`, 1M ({how})", f"{peak:.0f} MB", f"{peak / raw:.2f}x",
         verdict(peak / raw, 1.5, False)],
    ]
    if m["read_peak"] is not None:
        read = m["read_peak"] - m["before"]
        rows.append(["  of which: peak while reading the manifest (info)", f"{read:.0f} MB",
                     f"{read / raw:.2f}x", "-"])
    rows.append(["RSS still held after setup (info)", f"{kept:.0f} MB", f"{kept / raw:.2f}x", "-"])
    live = m["released"] - m["before"]
    rows.append([f"  of which live after `pyarrow` {m['pool']} pool `release_unused()` (info)",
                 f"{live:.0f} MB", f"{live / raw:.2f}x", "-"])
    return rows


def main() -> None:
    """Both tables; with ``--memory-only``, just the setup memory (a few seconds, not minutes)."""
    memory_only = "--memory-only" in sys.argv[1:]
    header("bench/datamodule.py: ManifestDatamodule rows/s and setup memory")
    rows = []
    with tempfile.TemporaryDirectory(prefix="serotiny-bench-dm-") as tmp:
        tmp_path = Path(tmp)
        paths = {}
        for label, n in SIZES.items():
            paths[label] = tmp_path / f"manifest_{label}.parquet"
            write_manifest(paths[label], n)
        memory_rows = memory(paths["1M"], tmp_path)
        for label in [] if memory_only else SIZES:
            rows += bench_size(label, paths[label])
            sys.stdout.flush()
    if not memory_only:
        print(f"rows/s over one shuffled epoch of the train split, batch {BATCH}, num_workers=0, "
              f"torch threads={THREADS}; "
              f"median of {REPEATS['100k']} (100k) / {REPEATS['1M']} (1M) epochs, alternating; "
              "ratio = ManifestDatamodule / baseline\n")
        print(table(["loader", "rows/s", "ManifestDatamodule vs it", "median of paired ratios", "goal"],
                    rows))
    print("\npeak memory of `ManifestDatamodule(...).setup(\"fit\")`, 1M rows, in a fresh process\n")
    print(table(["measure", "MB", "vs raw array", "goal"], memory_rows))


if __name__ == "__main__":
    main()
