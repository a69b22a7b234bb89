"""A train run as a model that predicts from manifest rows: what its MLflow model serves.

:func:`predict_rows` is ``serotiny predict`` applied to the rows given: the
run's datamodule (its ``data`` config, with ``path`` set to those rows) and
its model, loaded from the checkpoint ``predict`` takes, predicted by a
Trainer of the model's Lightning namespace, written by the same
:class:`~serotiny_core.predictions.PredictionWriter`. Nothing here imports
MLflow: the command runs it once on a few example rows, and the MLflow
process (:mod:`serotiny_core.pyfunc`) only packs the result.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from omegaconf import OmegaConf

from serotiny_core import __version__, lightning_ns

MODEL_ARTIFACT = "model"
EXAMPLE_ROWS = 3  # the input example: enough to show the columns, cheap to predict at the end of a run


@dataclass
class ModelSpec:
    """What the MLflow process needs to write a run's model: all plain, picklable data."""

    config: dict[str, Any]  # the run's resolved ``model`` and ``data`` (secrets masked)
    checkpoint: str
    example: Any  # a few manifest rows (a DataFrame)
    output: Any  # what predict writes for them
    requirements: list[str] = field(default_factory=list)
    registered_name: str | None = None


def unwrappable(model: Any, datamodule: Any, data: Mapping[str, Any]) -> str | None:
    """Why a run's model cannot be served from manifest rows, or None when it can."""
    namespace = lightning_ns.namespace_of(model)
    base = lightning_ns.attribute(namespace, "LightningModule") if namespace else None
    if base is None or getattr(type(model), "predict_step", None) is base.predict_step:
        return f"{type(model).__name__} defines no predict_step"
    if hasattr(model, "save_predictions"):
        return f"{type(model).__name__} writes its own prediction files (save_predictions)"
    if not callable(getattr(datamodule, "frame", None)) or "path" not in data:
        return f"{type(datamodule).__name__} does not read its rows from a manifest 'path'"
    return None


def requirements(pins: list[str]) -> list[str]:
    """serotiny and every plugin distribution (``name==version``), each once."""
    return list(dict.fromkeys([f"serotiny=={__version__}", *pins]))


def predict_rows(config: Mapping[str, Any], checkpoint: str, rows: Any) -> Any:
    """What ``serotiny predict`` writes for ``rows`` (a DataFrame with the manifest's columns)."""
    import pandas as pd

    from serotiny_core.assembly import instantiate
    from serotiny_core.predictions import PredictionWriter

    with tempfile.TemporaryDirectory(prefix="serotiny-rows-") as staging:
        folder = Path(staging)
        manifest = folder / "rows.parquet"
        pd.DataFrame(rows).reset_index(drop=True).to_parquet(manifest, index=False)
        data = OmegaConf.create(dict(config["data"]))
        data.path = str(manifest)
        if "num_workers" in data:  # a few rows: starting workers costs more than they save
            data.num_workers = 0
        datamodule, model = instantiate(data), instantiate(OmegaConf.create(dict(config["model"])))
        writer = PredictionWriter(folder / "predictions")
        namespace = lightning_ns.namespace_of(model) or lightning_ns.PL
        with _quiet(namespace):
            trainer = _trainer(namespace, writer, folder)
            trainer.predict(model, datamodule=lightning_ns.bridge_datamodule(datamodule, namespace),
                            ckpt_path=checkpoint, return_predictions=False)
        return pd.read_parquet(writer.written[0]) if writer.written else pd.DataFrame()


@contextlib.contextmanager
def _quiet(namespace: str) -> Iterator[None]:
    """Without Lightning's notes on devices and restored checkpoints: said once per row batch
    served, they would drown the logs of a train run or a server."""
    logger = logging.getLogger(f"{namespace}.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint")
            yield
    finally:
        logger.setLevel(level)


def _trainer(namespace: str, writer: Any, folder: Path) -> Any:
    """A one-device Trainer of the model's namespace, writing predictions only."""
    trainer = lightning_ns.attribute(namespace, "Trainer")
    return trainer(devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, default_root_dir=str(folder),
                   callbacks=[lightning_ns.adopt(writer, "Callback", namespace)])
