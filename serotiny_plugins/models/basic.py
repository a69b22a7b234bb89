"""Supervised learning with any ``torch.nn`` network: ``y_hat = network(x)``, ``loss(y_hat, y)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn

from serotiny_plugins.models.base import BaseModel, OptimizerArg, SchedulerArg, resolve


_LOSS_CLASS_KEY = "serotiny_loss_class"


def _class_path(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


class BasicModel(BaseModel):
    """Fit ``network`` to map ``batch[x_label]`` to ``batch[y_label]`` under ``loss``.

    ``network`` and ``loss`` are modules (what Hydra's recursive instantiation
    passes) or Hydra specs (with ``_recursive_: false``). Only specs are saved
    as hyperparameters; modules must be given again to ``load_from_checkpoint``.

    Targets are adapted to the loss: with ``nn.CrossEntropyLoss``, a float
    target shaped like the logits is taken as one-hot/probabilities, anything
    else as class indices (a ``[B, 1]`` column is squeezed, floats become
    longs); with other losses a target with as many elements as the output is
    reshaped to it and cast to its dtype (so ``[B]`` labels fit ``[B, 1]``).

    ``predict_step`` returns ``{"y_hat": network output}``, plus
    ``"y_prob"`` (softmax over dim 1) when the loss is cross-entropy.
    """

    def __init__(
        self,
        network: nn.Module | Mapping[str, Any],
        loss: nn.Module | Mapping[str, Any] | None = None,
        x_label: str = "x",
        y_label: str = "y",
        optimizer: OptimizerArg = torch.optim.Adam,
        lr_scheduler: SchedulerArg | None = None,
    ) -> None:
        super().__init__(x_label=x_label, optimizer=optimizer, lr_scheduler=lr_scheduler)
        self.save_config(locals())
        self.network = resolve(network)
        self.loss = nn.MSELoss() if loss is None else resolve(loss)
        self.y_label = y_label

    @property
    def is_classifier(self) -> bool:
        """Whether outputs are class logits, which changes targets and predictions."""
        return isinstance(self.loss, nn.CrossEntropyLoss)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        y_hat = self(batch[self.x_label])
        return {"loss": self.loss(y_hat, self._target(batch[self.y_label], y_hat))}

    def _target(self, y: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        """``y`` in the form the loss expects for ``y_hat`` (see the class docstring)."""
        if not self.is_classifier:
            return y.reshape(y_hat.shape).to(y_hat.dtype) if y.numel() == y_hat.numel() else y
        if y.is_floating_point() and y.shape == y_hat.shape:
            return y.to(y_hat.dtype)
        if y.ndim == y_hat.ndim:
            y = y.squeeze(1)
        return y.long()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the loss class: a loss module is not a hyperparameter, see :meth:`on_load_checkpoint`."""
        checkpoint[_LOSS_CLASS_KEY] = _class_path(self.loss)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Warn when a loss module given at save time was not given again (MSELoss took its place)."""
        saved = checkpoint.get(_LOSS_CLASS_KEY, _class_path(self.loss))
        if saved != _class_path(self.loss):
            rank_zero_warn(
                f"this checkpoint was trained with {saved} but the model now has {_class_path(self.loss)}; "
                "pass loss=... to load_from_checkpoint to keep the original loss"
            )

    def predict_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        y_hat = self(batch[self.x_label])
        if self.is_classifier:
            return {"y_hat": y_hat, "y_prob": y_hat.softmax(dim=1)}
        return {"y_hat": y_hat}
