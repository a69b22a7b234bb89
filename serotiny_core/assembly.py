"""Build what a config describes: datamodule, model, callbacks, trainer; run them.

These are the steps of the flows in :mod:`serotiny_core.runner`, kept apart
so each flow stays a short, readable function.
"""

from __future__ import annotations

import copy
import gc
import logging
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from serotiny_core import lightning_ns
from serotiny_core.errors import ConfigError, DataError, SerotinyError, one_line
from serotiny_core.hydra_errors import serotiny_cause
from serotiny_core.job import CommandContext, Job
from serotiny_core.legacy import translate_trainer
from serotiny_core.targets import DEFAULT_TRAINER, TargetResolver

if TYPE_CHECKING:  # for the reader and type checkers only: importing Lightning costs seconds
    from pytorch_lightning import Callback, LightningDataModule, LightningModule, Trainer
    from pytorch_lightning.loggers import Logger

log = logging.getLogger("serotiny")
REQUIRED_GROUPS = ("data", "model", "trainer")


def prepare(cfg: DictConfig, context: CommandContext, model: DictConfig | None = None) -> None:
    """Check the config and resolve every ``_target_`` before any data is read."""
    for group in REQUIRED_GROUPS:
        node = model if group == "model" and model is not None else cfg.get(group)
        if not isinstance(node, DictConfig) or not node:
            raise ConfigError(f"the config has no {group!r} section",
                              hint=f"add '{group}: <option>' to the defaults of {context.mode}.yaml "
                                   f"or pass {group}=<option>")
    with open_dict(cfg):
        cfg.trainer.setdefault("_target_", DEFAULT_TRAINER)
    translate_trainer(cfg.trainer)
    resolver = TargetResolver(context.plugins, strict=context.strict,
                              allow=tuple(context.project.allow_targets))
    resolver.resolve(cfg)
    if model is not None:
        resolver.resolve(model)


def seed(cfg: DictConfig) -> None:
    if cfg.get("seed") is not None:
        from pytorch_lightning import seed_everything

        seed_everything(int(cfg.seed), workers=True, verbose=False)


def instantiate(node: Any, **kwargs: Any) -> Any:
    """Hydra's instantiate with plain containers (lists, dicts) as arguments.

    A serotiny error raised by a constructor (``batch_size must be at least
    1``) is raised as itself, not wrapped in Hydra's ``Error in call to
    target``: the user gets its one line, its hint and its exit code.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        cause = serotiny_cause(error)
        if cause is None:
            raise
        raise cause from None


def _callback_specs(node: Any) -> Iterator[Any]:
    """The specs in ``trainer.callbacks``, in order: a list of specs, a mapping of name -> spec
    (as in the lightning-hydra-template), or a mapping that also holds the lists of
    list-form files selected with mapping-form ones (see :mod:`serotiny_core.composition`).
    An empty file, or a null entry, means none."""
    if isinstance(node, ListConfig):
        yield from (spec for spec in node if spec is not None)
    elif isinstance(node, DictConfig) and "_target_" not in node:
        for entry in node.values():
            yield from _callback_specs(entry)
    elif node is not None:
        yield node


def _callbacks(node: Any) -> list[Callback]:
    return [instantiate(spec) for spec in _callback_specs(node)]


def _loggers(node: Any) -> list[Any]:
    """``trainer.logger``: one spec, a list, or a mapping of name -> spec; true/false/null add none."""
    if node is None or isinstance(node, bool):
        return []
    if isinstance(node, DictConfig) and "_target_" in node:
        return [instantiate(node)]
    return _callbacks(node)


def _ensure_last_checkpoint(callbacks: list[Any], folder: Path, namespace: str) -> None:
    """Every train run keeps ``last.ckpt`` in its output folder, so it can resume."""
    ModelCheckpoint = lightning_ns.attribute(namespace, "callbacks.ModelCheckpoint")

    found = [cb for cb in callbacks if isinstance(cb, ModelCheckpoint)]
    if not found:
        callbacks.append(ModelCheckpoint(dirpath=folder, save_last=True))
        return
    for checkpoint in found:
        checkpoint.dirpath = checkpoint.dirpath or str(folder)
        checkpoint.save_last = checkpoint.save_last or True


def trainer(cfg: DictConfig, job: Job, model: LightningModule, loggers: list[Logger],
            checkpointing: bool, extra: list[Callback] | None = None) -> Trainer:
    """The Trainer of ``cfg.trainer`` with its callbacks and loggers, ours beside them.

    It is built in the model's Lightning namespace (see
    :mod:`serotiny_core.lightning_ns`), and so are serotiny's helpers.
    """
    spec = copy.deepcopy(cfg.trainer)
    namespace = lightning_ns.job_namespace(spec._target_, model)
    lightning_ns.translate(spec, namespace)
    node = OmegaConf.masked_copy(spec, [k for k in spec if k not in ("callbacks", "logger")])
    callbacks = _callbacks(spec.get("callbacks"))
    lightning_ns.check_callbacks(callbacks, namespace)
    if checkpointing and node.get("enable_checkpointing", True) is not False:
        _ensure_last_checkpoint(callbacks, job.output_dir / "checkpoints", namespace)
    from serotiny_core.guards import FirstBatchRecorder, StopOnSignal

    callbacks += [lightning_ns.adopt(helper, "Callback", namespace)
                  for helper in (FirstBatchRecorder(), StopOnSignal(), *(extra or []))]
    ours = [lightning_ns.adopt(logger, "loggers.MLFlowLogger", namespace) for logger in loggers]
    node.setdefault("default_root_dir", str(job.output_dir))
    return instantiate(node, callbacks=callbacks, logger=[*ours, *_loggers(spec.get("logger"))] or False)


def _check_checkpoint(ckpt_path: Any) -> None:
    if ckpt_path and not Path(str(ckpt_path)).is_file():
        raise ConfigError(f"ckpt_path {ckpt_path!r} does not exist",
                          hint="pass the path of a .ckpt file, or an MLflow run with mlflow.run_name=")


def _explain(error: Exception, trainer: Trainer, model: LightningModule,
             ckpt_path: Any) -> SerotinyError | None:
    """A one-line cause for the failures users make most: wrong checkpoint, wrong shapes."""
    text = str(error)
    if ckpt_path and isinstance(error, pickle.UnpicklingError):
        return ConfigError(f"checkpoint {ckpt_path} holds pickled objects that could run code, "
                           "and was loaded with weights_only=True (as --strict does)",
                           hint="use a checkpoint from a source you trust, without --strict")
    if ckpt_path and ("state_dict" in text or "hyper_parameters" in text):
        return ConfigError(f"checkpoint {ckpt_path} does not fit {type(model).__name__}: "
                           f"{text.strip().splitlines()[0]}",
                           hint="use a checkpoint written by this model class and config")
    from serotiny_core.guards import FirstBatchRecorder

    recorder = next((cb for cb in trainer.callbacks if isinstance(cb, FirstBatchRecorder)), None)
    if recorder is not None and recorder.shapes is not None and trainer.global_step == 0:
        return DataError(f"{type(model).__name__} failed on the first batch ({recorder.shapes}): "
                         f"{one_line(error)}",
                         hint="check that the loaders' output sizes match the model's input sizes")
    return None


def _call(method: Callable[..., Any], trainer: Trainer, model: LightningModule,
          datamodule: LightningDataModule, ckpt_path: Any, weights_only: bool | None) -> Any:
    _check_checkpoint(ckpt_path)
    datamodule = lightning_ns.bridge_datamodule(datamodule, lightning_ns.namespace_of(trainer))
    # Everything imported so far (torch, Lightning, MLflow) lives as long as the
    # process: frozen, the garbage collector stops rescanning it during the fit
    # and at exit, where it cost seconds.
    gc.freeze()
    try:
        return method(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=weights_only)
    except SerotinyError:
        raise
    except Exception as error:
        explained = _explain(error, trainer, model, ckpt_path)
        if explained is None:
            raise
        raise explained from error


# ``weights_only=True`` (under --strict) loads checkpoints without unpickling code.
def fit(trainer: Trainer, model: LightningModule, datamodule: LightningDataModule, ckpt_path: Any,
        weights_only: bool | None = None) -> None:
    _call(trainer.fit, trainer, model, datamodule, ckpt_path, weights_only)


def evaluate(trainer: Trainer, model: LightningModule, datamodule: LightningDataModule, ckpt_path: Any,
             weights_only: bool | None = None) -> None:
    _call(trainer.test, trainer, model, datamodule, ckpt_path, weights_only)


def predict(trainer: Trainer, model: LightningModule, datamodule: LightningDataModule, ckpt_path: Any,
            weights_only: bool | None = None) -> None:
    _call(lambda m, **kw: trainer.predict(m, return_predictions=False, **kw),
          trainer, model, datamodule, ckpt_path, weights_only)


def best_or_last(trainer: Trainer) -> str | None:
    """The best checkpoint when a monitor chose one, else the last; None without checkpoints."""
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None:
        return None
    return checkpoint.best_model_path or checkpoint.last_model_path or None
