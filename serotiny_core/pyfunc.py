"""A train run's MLflow model (``mlflow.pyfunc``), written in the MLflow process.

The model folder holds the checkpoint, the run's resolved ``model`` and
``data`` config, a signature (manifest columns in, prediction columns out),
an input example and pinned pip requirements (no inference: it is slow).
Loading it needs serotiny and the plugins it names installed, and a
project's own package importable when its config names targets there;
never the project folder itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import mlflow.pyfunc
import pandas as pd
import yaml

from serotiny_core.served import MODEL_ARTIFACT, ModelSpec, predict_rows

PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
CHECK_PINS = "warn_dependency_requirement_mismatches"  # in mlflow.utils.environment


class ServedRun(mlflow.pyfunc.PythonModel):
    """Manifest rows in, what ``serotiny predict`` writes for them out."""

    def load_context(self, context: Any) -> None:
        """Read the run's config once, when MLflow loads the model."""
        self.config = yaml.safe_load(Path(context.artifacts["config"]).read_text())
        self.checkpoint = context.artifacts["checkpoint"]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """One row per row of ``model_input``: its identifying columns, then the predictions."""
        return predict_rows(self.config, self.checkpoint, model_input)


def save(spec: ModelSpec, checkpoint: Path, staging: Path) -> Path:
    """The model folder for ``spec`` (with ``checkpoint``, its checkpoint), under ``staging``."""
    from mlflow.models import infer_signature

    config = staging / "config.yaml"
    config.write_text(yaml.safe_dump(spec.config, sort_keys=False))
    folder = staging / MODEL_ARTIFACT
    entry = Path(__file__).with_name("pyfunc_entry.py")
    with _quiet(), _pins_unchecked():
        mlflow.pyfunc.save_model(str(folder), python_model=str(entry),
                                 artifacts={"checkpoint": str(checkpoint), "config": str(config)},
                                 signature=infer_signature(spec.example, spec.output),
                                 input_example=spec.example, pip_requirements=spec.requirements)
    return folder


@contextlib.contextmanager
def _pins_unchecked() -> Iterator[None]:
    """Without MLflow's check of each requirement against the installed packages.

    The pins are the installed versions (serotiny's and its plugins'), so the
    check finds nothing; but it maps every installed distribution's files to
    its modules first, 1-2.5 s of each train run's MLflow process (once per
    job in a sweep). An MLflow without that function runs its own check.
    """
    from mlflow.utils import environment

    check = getattr(environment, CHECK_PINS, None)
    if check is None:
        yield
        return
    setattr(environment, CHECK_PINS, lambda requirements: None)
    try:
        yield
    finally:
        setattr(environment, CHECK_PINS, check)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without MLflow's progress bars and notes for copying two local files into the folder:
    at the end of every train run they would be noise."""
    logger = logging.getLogger("mlflow.pyfunc")
    level, bars = logger.level, os.environ.get(PROGRESS_BAR_ENV)
    logger.setLevel(logging.WARNING)
    os.environ[PROGRESS_BAR_ENV] = "false"
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars is None:
            os.environ.pop(PROGRESS_BAR_ENV, None)
        else:
            os.environ[PROGRESS_BAR_ENV] = bars
