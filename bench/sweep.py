"""A 20-job ``serotiny train -m`` sweep against the same 20 fits in a hand-written loop.

Goal (issue 16): the sweep's wall time <= 1.05x the loop's.

Both sides: 20 fits of a TabularVAE (``serotiny_plugins.models.tabular_vae``,
x_dim 16, hidden [32, 32], Adam lr 1e-3), ``latent_dim`` in 2, 4, 6, 8, 10
times ``seed`` in 1, 2, 3, 4 (the order of Hydra's basic sweeper), on a
10,000-row, 16-feature parquet manifest (80/10/10), 1 epoch each, batch 64,
``pl.Trainer(accelerator="cpu", devices=1, enable_progress_bar=False,
enable_model_summary=False, log_every_n_steps=50)``, one
``ModelCheckpoint(save_last=True, save_top_k=0)`` and a ``FirstBatchStamp``
callback appending ``time.time()`` at each fit's first training batch. Each
fit is one MLflow run in a SQLite store of its own kind: serotiny's project
store (``mlflow.db``, emptied before each sweep) and a new ``mlflow.db`` for
each loop; both therefore create the store's tables once. Every run gets the
config as params, epoch metrics, ``last.ckpt`` as an artifact and an MLflow
model.

- serotiny: ``serotiny train -m model.latent_dim=2,4,6,8,10 seed=1,2,3,4`` in
  a project made by ``serotiny init``, Hydra's basic launcher, defaults for
  everything tracked.
- by hand: one Python process: ``mlflow.start_run`` per fit, Lightning's
  ``MLFlowLogger`` bound to it, ``mlflow.log_artifact`` of ``last.ckpt``,
  ``mlflow.pytorch.log_model`` with its requirements given (no inference).

Each side runs in a fresh interpreter, alternating (hand, serotiny, ...);
``OMP_NUM_THREADS=1`` unless set (see ``bench/train.py``). Where the time of
a serotiny job goes is read from what the sweep leaves behind: each job's
``.hydra/config.yaml`` (written when Hydra starts the job), its MLflow run's
start and end times, the first-batch stamp, ``last.ckpt`` (written at the
end of the epoch) and ``result.json`` (the job's last write).

``--profile`` runs the serotiny sweep once under cProfile and prints where
its time goes instead; ``--repeats N`` (default 2) rounds; ``--rows N``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from _timing import (PYTHON, SEROTINY, bench_project, clean_env, cpu_seconds, header, median, paired_ratio,
                     seconds, table, verdict, write_manifest)

ROWS, FEATURES, BATCH = 10_000, 16, 64
LATENT_DIMS, SEEDS = (2, 4, 6, 8, 10), (1, 2, 3, 4)
REPEATS = 2
PROJECT = "benchsweep"
THREADS = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}

SWEEP = ["-m", "data=bench", "model=bench", "trainer=bench", "trainer/callbacks=bench",
         "model.latent_dim=" + ",".join(map(str, LATENT_DIMS)), "seed=" + ",".join(map(str, SEEDS))]

HAND_SCRIPT = '''\
"""The same 20 fits by hand: one process, one in-process MLflow run per fit."""

import functools
import json
import sys
import time
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import MLFlowLogger
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, %(root)r)
from %(project)s.stamp import FirstBatchStamp
from serotiny_plugins.models.tabular_vae import TabularVAE

out = Path(sys.argv[1])
uri = f"sqlite:///{out}/mlflow.db"
mlflow.set_tracking_uri(uri)
experiment = mlflow.create_experiment("hand", artifact_location=(out / "mlartifacts").as_uri())
frame = pd.read_parquet(%(manifest)r)
features = [c for c in frame.columns if c.startswith("feature_")]
requirements = [f"torch=={torch.__version__}", f"pytorch-lightning=={pl.__version__}"]


def as_dict(items):
    """TabularVAE reads batch["x"]: stack the items as default_collate would."""
    return {"x": torch.stack([x for (x,) in items])}


def loader(split, shuffle):
    x = torch.from_numpy(frame.loc[frame["split"] == split, features].to_numpy(np.float32))
    return DataLoader(TensorDataset(x), batch_size=%(batch)d, shuffle=shuffle, collate_fn=as_dict)


times = []
for latent_dim in %(latent_dims)r:
    for seed in %(seeds)r:
        job, start = len(times), time.time()
        with mlflow.start_run(experiment_id=experiment, run_name=f"hand-{job}") as run:
            mlflow.log_params({"model/latent_dim": latent_dim, "seed": seed, "model/x_dim": %(features)d,
                               "model/hidden_layers": [32, 32], "data/batch_size": %(batch)d,
                               "trainer/max_epochs": 1})
            opened = time.time()
            pl.seed_everything(seed, workers=True, verbose=False)
            model = TabularVAE(x_dim=%(features)d, latent_dim=latent_dim, hidden_layers=[32, 32],
                               x_label="x", optimizer=functools.partial(torch.optim.Adam, lr=1e-3))
            checkpoint = ModelCheckpoint(dirpath=out / str(job) / "checkpoints", save_last=True,
                                         save_top_k=0)
            trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, enable_progress_bar=False,
                                 enable_model_summary=False, log_every_n_steps=50,
                                 default_root_dir=out / str(job),
                                 logger=MLFlowLogger(tracking_uri=uri, run_id=run.info.run_id),
                                 callbacks=[checkpoint, FirstBatchStamp()])
            trainer.fit(model, loader("train", True), loader("val", False))
            fitted = time.time()
            mlflow.log_artifact(checkpoint.last_model_path, "checkpoints")
            mlflow.pytorch.log_model(model, name="model", pip_requirements=requirements,
                                     serialization_format="pickle")
        times.append({"start": start, "open": opened, "fit": fitted, "end": time.time()})
(out / "times.json").write_text(json.dumps(times))
'''

DIFFERENCES = """\
What differs (everything else is identical, see the top of bench/sweep.py):
- serotiny: one command, whose one MLflow process (its own interpreter: imports MLflow
  once) serves every job; per job Hydra composes the config, serotiny resolves every
  _target_, the MLflow process opens the store, logs the flattened config as params,
  train.yaml, the manifest as a dataset, MLflow's context tags and the model summary;
  reads the manifest with ManifestDatamodule; at the end uploads last.ckpt and logs a
  pyfunc model (example rows predicted, signature); writes result.json; prints the
  summary table at the end.
- by hand: MLflow imported once, in the loop's own process; the manifest read once;
  6 params; TensorDataset + DataLoader; mlflow.pytorch.log_model (the pickled module)."""


def make_project(where: Path, rows: int) -> Path:
    root = bench_project(where, PROJECT, {"batch": BATCH, "features": FEATURES, "latent": 2,
                                          "hidden": [32, 32], "epochs": 1})
    write_manifest(root / "data" / "bench.parquet", rows, FEATURES)
    return root


def run(cmd: list[str], cwd: Path, stamp: Path) -> tuple[float, float, float]:
    """(the time.time() just before spawning ``cmd``, its wall seconds, its CPU seconds with its
    children's: serotiny's MLflow process); its first-batch stamps in ``stamp``."""
    stamp.unlink(missing_ok=True)
    cpu_start, began, start = cpu_seconds(), time.time(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env({"BENCH_STAMP": str(stamp), **THREADS}),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.decode(errors='replace')[-4000:]}")
    return began, wall, cpu_seconds() - cpu_start


def stamps(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()]


def fresh_store(root: Path) -> None:
    """Each sweep starts on an empty store, as each loop does: both create the tables once."""
    for name in ("mlflow.db", "mlflow.db.lock"):
        (root / name).unlink(missing_ok=True)
    shutil.rmtree(root / "mlartifacts", ignore_errors=True)
    shutil.rmtree(root / "multirun", ignore_errors=True)


def serotiny_steps(root: Path, began: float, firsts: list[float]) -> dict[str, list[float]]:
    """Per job: the seconds between the marks it left (see the module's docstring)."""
    sweep = next((root / "multirun" / "train").glob("*/*"))
    jobs = sorted((d for d in sweep.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
    results = [json.loads((job / "result.json").read_text()) for job in jobs]
    with sqlite3.connect(root / "mlflow.db") as db:
        run_times = {run_id: (start / 1000, end / 1000)
                     for run_id, start, end in db.execute("SELECT run_uuid, start_time, end_time FROM runs")}
    steps: dict[str, list[float]] = {name: [] for name in SEROTINY_STEPS}
    previous = began
    for job, result, first in zip(jobs, results, firsts):
        opened, ended = run_times[result["run_id"]]
        marks = [previous, mtime(job / ".hydra" / "config.yaml"), opened, first,
                 mtime(job / "checkpoints" / "last.ckpt"), ended, mtime(job / "result.json")]
        for name, (a, b) in zip(SEROTINY_STEPS, zip(marks, marks[1:])):
            steps[name].append(b - a)
        previous = marks[-1]
    return steps


def hand_steps(out: Path, began: float, firsts: list[float]) -> dict[str, list[float]]:
    times = json.loads((out / "times.json").read_text())
    steps: dict[str, list[float]] = {name: [] for name in SEROTINY_STEPS}
    previous = began
    for job, first in zip(times, firsts):
        marks = [previous, job["start"], job["open"], first, job["fit"], job["end"], job["end"]]
        for name, (a, b) in zip(SEROTINY_STEPS, zip(marks, marks[1:])):
            steps[name].append(b - a)
        previous = job["end"]
    return steps


def mtime(path: Path) -> float:
    return path.stat().st_mtime


SEROTINY_STEPS = [
    "previous job's end to this job's start: Hydra composes the job (job 0: the command's start)",
    "job start to MLflow run open: store opened (job 0: MLflow imported), run, params, tags",
    "run open to first train batch: data, model, trainer, sanity check",
    "first train batch to last.ckpt: the epoch",
    "last.ckpt to run end: checkpoint upload, MLflow model logged",
    "run end to job end: the MLflow process done with the job, result.json",
]


def step_rows(serotiny: dict[str, list[float]], hand: dict[str, list[float]]) -> list[list[str]]:
    """Job 0 apart (it pays the imports and the store's creation), then the median of jobs 1-19."""
    rows = []
    for label, pick in (("job 0", lambda v: v[0]), ("median of jobs 1-19", lambda v: median(v[1:]))):
        for name in SEROTINY_STEPS:
            rows.append([label, name, seconds(pick(serotiny[name])), seconds(pick(hand[name]))])
        rows.append([label, "total", seconds(sum(pick(serotiny[n]) for n in SEROTINY_STEPS)),
                     seconds(sum(pick(hand[n]) for n in SEROTINY_STEPS))])
    return rows


def profile(root: Path, stamp: Path, where: Path) -> None:
    """The serotiny sweep once under cProfile: the 30 costliest calls by cumulative time."""
    import pstats

    out = where / "sweep.prof"
    fresh_store(root)
    run([PYTHON, "-m", "cProfile", "-o", str(out), "-m", "serotiny_core.cli", "train", *SWEEP],
        root, stamp)
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--profile", action="store_true", help="profile one serotiny sweep instead")
    args = parser.parse_args()
    header("bench/sweep.py: a 20-job serotiny train -m vs the same 20 fits in a Python loop")
    with tempfile.TemporaryDirectory(prefix="serotiny-bench-sweep-") as tmp:
        tmp_path = Path(tmp)
        root = make_project(tmp_path, args.rows)
        stamp = tmp_path / "stamps.txt"
        if args.profile:
            profile(root, stamp, tmp_path)
            return
        script = tmp_path / "hand_sweep.py"
        script.write_text(HAND_SCRIPT % {
            "root": str(root), "project": PROJECT, "batch": BATCH, "features": FEATURES,
            "manifest": str(root / "data" / "bench.parquet"), "latent_dims": LATENT_DIMS, "seeds": SEEDS})
        walls: dict[str, list[float]] = {"hand": [], "serotiny": []}
        cpus: dict[str, list[float]] = {"hand": [], "serotiny": []}
        for round_ in range(args.repeats):
            out = tmp_path / f"hand-{round_}"
            out.mkdir()
            began, wall, cpu = run([PYTHON, str(script), str(out)], tmp_path, stamp)
            walls["hand"].append(wall)
            cpus["hand"].append(cpu)
            hand = hand_steps(out, began, stamps(stamp))
            fresh_store(root)
            began, wall, cpu = run([SEROTINY, "train", *SWEEP], root, stamp)
            walls["serotiny"].append(wall)
            cpus["serotiny"].append(cpu)
            ours = serotiny_steps(root, began, stamps(stamp))
    report(walls, cpus, ours, hand, args)


def report(walls: dict[str, list[float]], cpus: dict[str, list[float]], ours: dict[str, list[float]],
           hand: dict[str, list[float]], args: argparse.Namespace) -> None:
    wall = {k: median(v) for k, v in walls.items()}
    cpu = {k: median(v) for k, v in cpus.items()}
    ratio = wall["serotiny"] / wall["hand"]
    jobs = len(LATENT_DIMS) * len(SEEDS)
    rows = [
        ["wall time, hand-written loop (baseline)", seconds(wall["hand"]), "1.00x", "baseline"],
        [f"wall time, `serotiny train -m` ({jobs} jobs)", seconds(wall["serotiny"]), f"{ratio:.2f}x",
         verdict(ratio, 1.05, higher_is_better=False)],
        ["wall time: median of paired ratios (info)", "",
         f"{paired_ratio(walls['serotiny'], walls['hand']):.2f}x", "-"],
        ["serotiny's extra time per job (info)", seconds((wall["serotiny"] - wall["hand"]) / jobs), "", "-"],
        ["CPU time (user+sys), hand-written loop (info)", seconds(cpu["hand"]), "1.00x", "-"],
        ["CPU time (user+sys), `serotiny train -m` (info)", seconds(cpu["serotiny"]),
         f"{cpu['serotiny'] / cpu['hand']:.2f}x", "-"],
    ]
    print(f"{jobs} jobs x 1 epoch, {args.rows:,} rows x {FEATURES} features, batch {BATCH}; median of "
          f"{args.repeats} runs each, alternating, each on a fresh SQLite store; "
          f"OMP_NUM_THREADS={THREADS['OMP_NUM_THREADS']}\n")
    print(table(["measure", "median", "vs baseline", "goal"], rows))
    print("\nwhere a job's time goes (the last round; by hand: the loop's own marks, no Hydra, "
          "MLflow in-process)\n")
    print(table(["job", "step", "serotiny", "by hand"], step_rows(ours, hand)))
    print()
    print(DIFFERENCES)


if __name__ == "__main__":
    main()
