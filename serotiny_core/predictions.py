"""Write predictions as parquet, one row per input row, joined to the manifest's ids.

Models return a dict of tensors from ``predict_step``; each key becomes a
column (``z_mean_0``, ``z_mean_1``... for vectors). When the datamodule can
say which manifest rows a batch came from (the batch's ``_index`` and an
``identifiers(split)`` method), their identifying columns come first, and
rows are in manifest order. A model with ``save_predictions(predictions,
folder)`` writes its own files.

Under DDP each rank predicts part of the rows; rank 0 gathers every rank's
outputs and writes them all, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from serotiny_core.batch import INDEX_KEY


def _columns(key: str, values: np.ndarray) -> dict[str, np.ndarray]:
    if values.ndim == 1:
        return {key: values}
    flat = values.reshape(len(values), -1)
    if flat.shape[1] == 1:
        return {key: flat[:, 0]}
    return {f"{key}_{i}": flat[:, i] for i in range(flat.shape[1])}


def _concat(outputs: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    import torch

    keys = [k for k, v in outputs[0].items() if isinstance(v, torch.Tensor)]
    return {k: torch.cat([o[k].detach().cpu() for o in outputs]).numpy() for k in keys}


class PredictionWriter:
    """Collects ``predict_step`` outputs with their rows; writes them at the end.

    A Lightning Callback of the trainer's namespace once the trainer is built
    (see :func:`serotiny_core.lightning_ns.adopt`).
    """

    def __init__(self, folder: Path, filename: str = "predictions.parquet") -> None:
        self.folder = folder
        self.filename = filename
        self.outputs: list[Mapping[str, Any]] = []
        self.rows: list[Any] = []
        self.written: list[Path] = []

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        if not isinstance(outputs, Mapping):
            outputs = {"prediction": outputs}
        self.outputs.append(outputs)
        if isinstance(batch, Mapping) and INDEX_KEY in batch:
            self.rows.append(batch[INDEX_KEY].detach().cpu())

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        outputs, rows = _gathered(trainer, self.outputs, self.rows)
        if not outputs or trainer.global_rank != 0:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if hasattr(pl_module, "save_predictions"):
            pl_module.save_predictions(outputs, self.folder)
            self.written = sorted(p for p in self.folder.iterdir() if p.is_file())
            return
        frame = _frame(trainer, outputs, rows)
        path = self.folder / self.filename
        frame.to_parquet(path, index=False)
        self.written = [path]


def _gathered(trainer: Any, outputs: list[Mapping[str, Any]], rows: list[Any]) -> tuple[list, list]:
    """Every rank's outputs and row positions (on the CPU), rank by rank; this rank's alone
    outside DDP. Every rank must call it: it is a collective."""
    import torch
    import torch.distributed as dist

    if trainer.world_size <= 1 or not dist.is_available() or not dist.is_initialized():
        return outputs, rows
    on_cpu = [{k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in o.items()}
              for o in outputs]
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (on_cpu, rows))
    return [o for part in parts for o in part[0]], [r for part in parts for r in part[1]]


def _frame(trainer: Any, outputs: list[Mapping[str, Any]], rows: list[Any]) -> Any:
    """One row per manifest row of the predict split, in manifest order, each once."""
    import pandas as pd
    import torch

    columns: dict[str, np.ndarray] = {}
    for key, values in _concat(outputs).items():
        columns.update(_columns(key, values))
    predictions = pd.DataFrame(columns)
    identifiers = getattr(trainer.datamodule, "identifiers", None)
    if not rows or identifiers is None:
        return predictions
    positions = torch.cat(rows).numpy()
    kept = np.unique(positions, return_index=True)[1]  # sorted by position; a repeated row once
    ids = identifiers("predict").iloc[positions[kept]].reset_index(drop=True)
    return pd.concat([ids, predictions.iloc[kept].reset_index(drop=True)], axis=1)
