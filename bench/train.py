"""``serotiny train`` against the same fit written by hand in Lightning.

Goals (issue 8): wall time <= 1.05x the hand-written script; time from the
command's start to the first training batch <= the script's + 1.5 s.

Both sides: a TabularVAE (``serotiny_plugins.models.tabular_vae``, x_dim 100,
latent 8, hidden [64, 64], Adam lr 1e-3) on a 20,000-row, 100-feature
parquet manifest (80/10/10 train/val/test), 5 epochs, batch 64, seed 42,
``pl.Trainer(accelerator="cpu", devices=1, enable_progress_bar=False,
enable_model_summary=False, log_every_n_steps=50)``, one
``ModelCheckpoint(save_last=True, save_top_k=0)``, validation every epoch
(2 sanity steps), and the same project callback ``FirstBatchStamp``, which
writes ``time.time()`` at the first ``on_train_batch_start``. Each command
runs in a fresh interpreter; its start is taken in this process just before
spawning it.

serotiny runs in a project made by ``serotiny init``, with tracking on (the
project's embedded SQLite store). Its first run creates ``mlflow.db``
(MLflow's schema migrations) and is reported apart: every later run of a
project reuses the store.

Both commands run with ``OMP_NUM_THREADS=1`` unless the environment sets it:
on a 2-core machine shared with other processes, torch's default of one
intra-op thread per core made each step of this small MLP ~25x slower (OpenMP
threads spinning against each other: 129 ms instead of 5 ms a step), which
turned a 20-second fit into minutes of noise. It applies to both sides alike.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from _timing import (PYTHON, SEROTINY, bench_project, clean_env, cpu_seconds, header, median, paired_ratio,
                     seconds, table, verdict, write_manifest)

ROWS, FEATURES, EPOCHS, BATCH = 20_000, 100, 5, 64
REPEATS = 3
PROJECT = "benchproj"
THREADS = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}

HAND_SCRIPT = '''\
"""The same fit, by hand: pandas + TensorDataset + DataLoader + TabularVAE + pl.Trainer."""

import functools
import sys

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, %(root)r)
from %(project)s.stamp import FirstBatchStamp
from serotiny_plugins.models.tabular_vae import TabularVAE

pl.seed_everything(42, workers=True, verbose=False)
frame = pd.read_parquet(%(manifest)r)
features = [c for c in frame.columns if c.startswith("feature_")]


def as_dict(items):
    """TabularVAE reads batch["x"]: stack the items as default_collate would."""
    return {"x": torch.stack([x for (x,) in items])}


def loader(split, shuffle):
    x = torch.from_numpy(frame.loc[frame["split"] == split, features].to_numpy(np.float32))
    return DataLoader(TensorDataset(x), batch_size=%(batch)d, shuffle=shuffle, collate_fn=as_dict)


model = TabularVAE(x_dim=%(features_n)d, latent_dim=8, hidden_layers=[64, 64], x_label="x",
                   optimizer=functools.partial(torch.optim.Adam, lr=1e-3))
trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=%(epochs)d, enable_progress_bar=False,
                     enable_model_summary=False, log_every_n_steps=50, logger=False,
                     default_root_dir=sys.argv[1],
                     callbacks=[ModelCheckpoint(dirpath=sys.argv[1] + "/checkpoints", save_last=True,
                                                save_top_k=0),
                                FirstBatchStamp()])
trainer.fit(model, loader("train", True), loader("val", False))
'''

DIFFERENCES = """\
What differs (everything else is identical, see the top of bench/train.py):
- serotiny: finds the project, discovers plugins, composes the config with Hydra and
  resolves every _target_; tracks to MLflow (SQLite): a run with tags, the flattened
  config as params, train.yaml as an artifact, epoch metrics through the MLFlowLogger,
  last.ckpt uploaded when the run ends; adds its FirstBatchRecorder callback; reads
  the manifest with ManifestDatamodule (batches gathered whole, no per-item collate).
- by hand: logger=False (no tracking); TensorDataset + DataLoader, per-item indexing
  and a collate_fn stacking the items into {"x": ...}; reads only train and val rows."""


def make_project(where: Path) -> Path:
    root = bench_project(where, PROJECT, {"batch": BATCH, "features": FEATURES, "latent": 8,
                                          "hidden": [64, 64], "epochs": EPOCHS})
    write_manifest(root / "data" / "bench.parquet", ROWS, FEATURES)
    return root


def timed(cmd: list[str], cwd: Path, stamp: Path) -> tuple[float, float, float]:
    """(wall seconds, seconds from spawning to the first training batch, CPU seconds)."""
    stamp.unlink(missing_ok=True)
    env = clean_env({"BENCH_STAMP": str(stamp), **THREADS})
    cpu_start, wall_start, start = cpu_seconds(), time.time(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.decode(errors='replace')[-4000:]}")
    return wall, float(stamp.read_text()) - wall_start, cpu_seconds() - cpu_start


def main() -> None:
    header("bench/train.py: serotiny train vs the same fit by hand")
    with tempfile.TemporaryDirectory(prefix="serotiny-bench-train-") as tmp:
        tmp_path = Path(tmp)
        root = make_project(tmp_path)
        script = tmp_path / "hand_train.py"
        script.write_text(HAND_SCRIPT % {"root": str(root), "project": PROJECT, "batch": BATCH,
                                         "manifest": str(root / "data" / "bench.parquet"),
                                         "features_n": FEATURES, "epochs": EPOCHS})
        stamp = tmp_path / "stamp.txt"

        def serotiny(run: int) -> tuple[float, float, float]:
            return timed([SEROTINY, "train", "data=bench", "model=bench", "trainer=bench",
                          "trainer/callbacks=bench", f"mlflow.run_name=bench-{run}"], root, stamp)

        def by_hand(run: int) -> tuple[float, float, float]:
            return timed([PYTHON, str(script), str(tmp_path / f"hand-{run}")], tmp_path, stamp)

        first = serotiny(0)  # creates mlflow.db
        results: dict[str, list[tuple[float, float, float]]] = {"hand": [], "serotiny": []}
        for run in range(1, REPEATS + 1):
            results["hand"].append(by_hand(run))
            results["serotiny"].append(serotiny(run))
        runs = len(list((root / "mlartifacts").rglob("last.ckpt")))

    wall = {k: median([r[0] for r in v]) for k, v in results.items()}
    to_batch = {k: median([r[1] for r in v]) for k, v in results.items()}
    cpu = {k: median([r[2] for r in v]) for k, v in results.items()}
    ratio = wall["serotiny"] / wall["hand"]
    paired = paired_ratio([r[0] for r in results["serotiny"]], [r[0] for r in results["hand"]])
    extra = to_batch["serotiny"] - to_batch["hand"]
    rows = [
        ["wall time, by hand (baseline)", seconds(wall["hand"]), "1.00x", "baseline"],
        ["wall time, `serotiny train`", seconds(wall["serotiny"]), f"{ratio:.2f}x",
         verdict(ratio, 1.05, higher_is_better=False)],
        ["wall time, `serotiny train`: median of paired ratios (info)", "", f"{paired:.2f}x", "-"],
        ["CPU time (user+sys), by hand (info)", seconds(cpu["hand"]), "1.00x", "-"],
        ["CPU time (user+sys), `serotiny train` (info)", seconds(cpu["serotiny"]),
         f"{cpu['serotiny'] / cpu['hand']:.2f}x", "-"],
        ["wall time, `serotiny train`, first run (creates mlflow.db) (info)", seconds(first[0]),
         f"{first[0] / wall['hand']:.2f}x", "-"],
        ["start to first train batch, by hand (baseline)", seconds(to_batch["hand"]), "+0.00 s",
         "baseline"],
        ["start to first train batch, `serotiny train`", seconds(to_batch["serotiny"]),
         f"{extra:+.2f} s", f"<= +1.5 s: {'met' if extra <= 1.5 else 'MISSED'}"],
        ["after the first batch to exit, by hand (info)", seconds(wall["hand"] - to_batch["hand"]),
         "", "-"],
        ["after the first batch to exit, `serotiny train` (info)",
         seconds(wall["serotiny"] - to_batch["serotiny"]),
         f"{(wall['serotiny'] - to_batch['serotiny']) / (wall['hand'] - to_batch['hand']):.2f}x", "-"],
    ]
    print(f"{ROWS:,} rows x {FEATURES} features, {EPOCHS} epochs, batch {BATCH}; median of {REPEATS} "
          f"runs each, alternating, after one warm-up serotiny run (it creates mlflow.db; shown apart); "
          f"{runs} checkpoints reached MLflow; OMP_NUM_THREADS={THREADS['OMP_NUM_THREADS']}\n")
    print(table(["measure", "median", "vs baseline", "goal"], rows))
    print()
    print(DIFFERENCES)


if __name__ == "__main__":
    main()
