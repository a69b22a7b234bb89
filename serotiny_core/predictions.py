"""Write predictions as parquet, one row per input row, joined to the manifest's ids.

Models return a dict of tensors from ``predict_step``; each key becomes a
column (``z_mean_0``, ``z_mean_1``... for vectors). When the datamodule can
say which manifest rows a batch came from (the batch's ``_index`` and an
``identifiers(split)`` method), their identifying columns come first. A
model with ``save_predictions(predictions, folder)`` writes its own files.
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
        if not self.outputs or trainer.global_rank != 0:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if hasattr(pl_module, "save_predictions"):
            pl_module.save_predictions(self.outputs, self.folder)
            self.written = sorted(p for p in self.folder.iterdir() if p.is_file())
            return
        frame = self._frame(trainer)
        path = self.folder / self.filename
        frame.to_parquet(path, index=False)
        self.written = [path]

    def _frame(self, trainer: Any) -> Any:
        import pandas as pd
        import torch

        columns: dict[str, np.ndarray] = {}
        for key, values in _concat(self.outputs).items():
            columns.update(_columns(key, values))
        predictions = pd.DataFrame(columns)
        identifiers = getattr(trainer.datamodule, "identifiers", None)
        if not self.rows or identifiers is None:
            return predictions
        positions = torch.cat(self.rows).numpy()
        ids = identifiers("predict").iloc[positions].reset_index(drop=True)
        return pd.concat([ids, predictions], axis=1)
