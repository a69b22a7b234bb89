"""The LightningModule base every built-in model shares.

It owns what models must agree on so that configs, callbacks and checkpoints
work the same for all of them: the ``<stage>_<name>`` epoch metrics, the
optimizer and scheduler arguments, and hyperparameters that survive
``load_from_checkpoint``.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

import pytorch_lightning as pl
import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

TARGET_KEY = "_target_"

#: ``torch.optim.Adam``, ``partial(torch.optim.Adam, lr=1e-3)`` or the Hydra spec of either.
OptimizerArg = Union[Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer], Mapping[str, Any]]
#: A callable taking the optimizer (usually a partial), or its Hydra spec.
SchedulerArg = Union[Callable[[torch.optim.Optimizer], Any], Mapping[str, Any]]

_PLAIN_TYPES = (type(None), bool, int, float, str)


def resolve(value: Any) -> Any:
    """Instantiate a Hydra spec (a mapping with ``_target_``); return anything else unchanged.

    Specs reach models from ``_recursive_: false`` configs and from checkpoints,
    whose hyperparameters hold specs rather than objects (see :func:`to_hparam`).
    """
    if isinstance(value, Mapping) and TARGET_KEY in value:
        return instantiate(value, _convert_="all")
    return value


def to_hparam(value: Any) -> Any:
    """Return a form of an ``__init__`` argument that a ``weights_only`` load accepts.

    Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, which refuses
    pickled classes, functions and partials. Those whose target is importable by
    name become Hydra specs (``{"_target_": ..., "_partial_": True, ...}``) that
    :func:`resolve` turns back into an equivalent callable; OmegaConf containers
    become plain ones. Anything else is kept as is, so a partial of a lambda
    still works but its checkpoint needs ``weights_only=False``.
    """
    if isinstance(value, (DictConfig, ListConfig)):
        return to_hparam(OmegaConf.to_container(value, resolve=True))
    if isinstance(value, Mapping):
        return {key: to_hparam(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_hparam(item) for item in value)
    if isinstance(value, (type, types.FunctionType, functools.partial)):
        spec = _callable_spec(value)
        return value if spec is None else spec
    return value


def _callable_spec(value: type | types.FunctionType | functools.partial) -> dict[str, Any] | None:
    """The partial Hydra spec of a class, function or partial; None when it has none."""
    func, args, keywords = (
        (value.func, value.args, value.keywords)
        if isinstance(value, functools.partial)
        else (value, (), {})
    )
    target = f"{func.__module__}.{func.__qualname__}"
    try:
        if get_object(target) is not func:
            return None
    except (ImportError, AttributeError, ValueError):
        return None
    spec = {TARGET_KEY: target, "_partial_": True, **to_hparam(dict(keywords))}
    if args:
        spec["_args_"] = to_hparam(list(args))
    return spec if _is_plain(spec) else None


def _is_plain(value: Any) -> bool:
    """Whether ``value`` is built only of YAML scalars, lists and string-keyed dicts."""
    if isinstance(value, Mapping):
        return all(isinstance(key, str) and _is_plain(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return isinstance(value, _PLAIN_TYPES)


class BaseModel(pl.LightningModule):
    """Logging, optimizers and checkpointable hyperparameters for serotiny models.

    Subclasses implement :meth:`losses` (a dict with ``"loss"`` and any
    components) and ``predict_step`` (a dict of tensors), and call
    :meth:`save_config` with ``locals()`` right after ``super().__init__``.
    Every loss component is logged per epoch as ``train_<name>``,
    ``val_<name>`` and ``test_<name>``, so ``val_loss`` is always there for
    EarlyStopping, checkpointing and ReduceLROnPlateau.
    """

    def __init__(
        self,
        x_label: str = "x",
        optimizer: OptimizerArg = torch.optim.Adam,
        lr_scheduler: SchedulerArg | None = None,
    ) -> None:
        super().__init__()
        self.x_label = x_label
        self.optimizer_factory = resolve(optimizer)
        self.lr_scheduler_factory = resolve(lr_scheduler)

    def save_config(self, init_args: Mapping[str, Any]) -> None:
        """Save a subclass's ``__init__`` arguments so ``load_from_checkpoint(path)`` rebuilds it.

        Pass ``locals()`` before defining any other local. ``nn.Module``
        arguments are left out (their weights are in the state dict already,
        and pickled modules would force ``weights_only=False``): give them
        again to ``load_from_checkpoint``, or pass them as Hydra specs, which
        are saved. Everything else goes through :func:`to_hparam`.
        """
        hparams = {
            name: to_hparam(value)
            for name, value in init_args.items()
            if name not in ("self", "__class__") and not isinstance(value, nn.Module)
        }
        self.save_hyperparameters(hparams)

    def losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch's loss under ``"loss"``, plus components worth logging."""
        raise NotImplementedError

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def _step(self, batch: Mapping[str, torch.Tensor], stage: str) -> torch.Tensor:
        losses = self.losses(batch)
        batch_size = len(batch[self.x_label])
        for name, value in losses.items():
            self.log(
                f"{stage}_{name}",
                value,
                on_step=False,
                on_epoch=True,
                batch_size=batch_size,
                prog_bar=name == "loss",
                sync_dist=True,
            )
        return losses["loss"]

    def configure_optimizers(self) -> Any:
        """The optimizer, plus the scheduler in Lightning's dict form when one is given.

        ``monitor`` is always ``val_loss``; Lightning only reads it for
        ReduceLROnPlateau.
        """
        optimizer = self.optimizer_factory(self.parameters())
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
