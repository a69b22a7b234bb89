"""The train, test and predict flows, each readable top to bottom.

Every ``_target_`` is resolved and every constructor's arguments checked
before any data is read (see :mod:`serotiny_core.targets`); then the
datamodule, model, callbacks and trainer are built and run, inside one
MLflow run when tracking is on.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from serotiny_core import assembly, pruning
from serotiny_core.job import CommandContext, Job, global_rank
from serotiny_core.session import Session
from serotiny_core.summary import write_result

log = logging.getLogger("serotiny")


@dataclass
class JobResult:
    """What a job hands back: to Hydra's sweepers and to the multirun summary."""

    mode: str
    job: int
    overrides: tuple[str, ...]
    metric: str | None
    objective: float | None
    run_id: str | None
    output_dir: Path
    pruned: bool = False  # an Optuna trial its pruner stopped early


def train(cfg: DictConfig, context: CommandContext, job: Job, session: Session) -> JobResult:
    assembly.prepare(cfg, context)
    assembly.seed(cfg)
    datamodule, model = assembly.instantiate(cfg.data), assembly.instantiate(cfg.model)
    with session.open_run(cfg):
        resumed = session.resume_checkpoint(cfg)
        if resumed.done:  # a sweep's finished job returns what its run recorded
            return _result(cfg, context, job, session, resumed.metrics)
        trainer = assembly.trainer(cfg, job, model, session.loggers(), checkpointing=True,
                                   extra=pruning.callbacks(optimized_metric(cfg, context), global_rank()))
        session.watch(trainer)
        session.log_model_summary(model)
        assembly.fit(trainer, model, datamodule, resumed.checkpoint, context.weights_only)
        fitted = dict(trainer.callback_metrics)  # a test after the fit replaces them
        pruned = pruning.was_pruned(trainer)
        if pruned:  # the run ends FINISHED: stopped on purpose, not failed
            session.set_tags({pruning.PRUNED_TAG: "true"})
        if cfg.get("test_after_fit", False):
            assembly.evaluate(trainer, model, datamodule, assembly.best_or_last(trainer),
                              context.weights_only)
        session.log_model(cfg, model, datamodule)
    return _result(cfg, context, job, session, fitted, pruned)


def _from_checkpoint(cfg: DictConfig, context: CommandContext, session: Session) -> tuple[Any, Any, str]:
    """For test/predict: datamodule, model and checkpoint of ``ckpt_path`` (with this
    config's model and data) or of an MLflow run (with the run's model and data)."""
    model_cfg, data_cfg, ckpt_path = session.model_and_checkpoint(cfg)
    with open_dict(cfg):
        cfg.data = data_cfg
    assembly.prepare(cfg, context, model=model_cfg)
    assembly.seed(cfg)
    return assembly.instantiate(cfg.data), assembly.instantiate(model_cfg), ckpt_path


def test(cfg: DictConfig, context: CommandContext, job: Job, session: Session) -> JobResult:
    with session.open_run(cfg):
        datamodule, model, ckpt_path = _from_checkpoint(cfg, context, session)
        trainer = assembly.trainer(cfg, job, model, session.loggers(), checkpointing=False)
        assembly.evaluate(trainer, model, datamodule, ckpt_path, context.weights_only)
    return _result(cfg, context, job, session, trainer.callback_metrics)


def predict(cfg: DictConfig, context: CommandContext, job: Job, session: Session) -> JobResult:
    from serotiny_core.predictions import PredictionWriter

    with session.open_run(cfg):
        datamodule, model, ckpt_path = _from_checkpoint(cfg, context, session)
        writer = PredictionWriter(job.output_dir / "predictions")
        trainer = assembly.trainer(cfg, job, model, session.loggers(), checkpointing=False, extra=[writer])
        assembly.predict(trainer, model, datamodule, ckpt_path, context.weights_only)
        for path in writer.written:
            session.log_artifact(path, "predictions")
            log.info("predictions written to %s", path)
    return _result(cfg, context, job, session, trainer.callback_metrics)


FLOWS = {"train": train, "test": test, "predict": predict}


def optimized_metric(cfg: DictConfig, context: CommandContext) -> str | None:
    """The metric a sweeper optimises: the config's ``optimized_metric``; for train, val_loss."""
    return cfg.get("optimized_metric") or ("val_loss" if context.mode == "train" else None)


def _result(cfg: DictConfig, context: CommandContext, job: Job, session: Session,
            metrics: Mapping[str, Any] | None, pruned: bool = False) -> JobResult:
    """The job's outcome; ``objective`` is the final value of ``optimized_metric`` in
    ``metrics``: for train, what the fit logged (a test after it logs other names)."""
    metric = optimized_metric(cfg, context)
    value = None
    if metrics is not None and metric and metric in metrics:
        value = float(metrics[metric])
    elif metrics is not None and metric:
        log.warning("optimized_metric %r was not logged (logged: %s); a sweeper gets no value",
                    metric, ", ".join(sorted(metrics)) or "nothing")
    return JobResult(context.mode, job.num, job.overrides, metric, value, session.run_id,
                     job.output_dir, pruned)


def execute_job(cfg: DictConfig, context: CommandContext) -> JobResult:
    """Run one Hydra job of ``context.mode``; rank 0 leaves ``result.json`` for the multirun summary."""
    # A deprecation inside Lightning under torch 2.13 that users can do nothing about.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    job = Job.current()
    with Session.connect(cfg, context, job) as session:  # MLflow loads meanwhile, in its own process
        result = FLOWS[context.mode](cfg, context, job, session)
    if global_rank() == 0:
        write_result(result)
    return result
