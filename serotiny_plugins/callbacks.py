"""Callbacks shipped with serotiny."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure


class LogReconstructions(pl.Callback):
    """Save a figure of what the model makes of a few samples, every ``every_n_epochs`` epochs.

    Images (``[B, C, H, W]`` or ``[B, C, D, H, W]``) are shown beside
    ``pl_module.reconstruct(x)`` (first channel; middle z slice in 3D);
    feature vectors (``[B, F]``) as a scatter of the first two latent means of
    ``pl_module.encode(x)``. The samples are the first ``n_samples`` of the
    epoch's first validation batch, or of its first training batch when no
    validation ran that epoch. Figures go to
    ``<default_root_dir>/reconstructions/epoch=NNN.png`` and, with an
    MLFlowLogger, to the run's ``reconstructions`` artifacts. Only global rank
    0 plots, and a failure only warns: a picture is never worth a crashed run.
    """

    def __init__(self, every_n_epochs: int = 1, n_samples: int = 8, x_label: str | None = None) -> None:
        self.every_n_epochs = every_n_epochs
        self.n_samples = n_samples
        self.x_label = x_label
        self._samples: dict[str, torch.Tensor] = {}
        self._logged_epoch: int | None = None
        self._warned = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Forget the previous run's epochs, so one instance can serve several fits."""
        self._samples.clear()
        self._logged_epoch = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == 0:
            self._keep("train", trainer, pl_module, batch)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and not trainer.sanity_checking:
            self._keep("val", trainer, pl_module, batch)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log("val", trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log("train", trainer, pl_module)

    def _due(self, trainer: pl.Trainer) -> bool:
        return (
            trainer.is_global_zero
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
            and self._logged_epoch != trainer.current_epoch
        )

    def _keep(self, source: str, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        """Copy the first samples aside, so the figure needs no extra pass over a dataloader."""
        label = self.x_label or getattr(pl_module, "x_label", "x")
        if self._due(trainer) and isinstance(batch, Mapping) and isinstance(batch.get(label), torch.Tensor):
            self._samples[source] = batch[label][: self.n_samples].detach().clone()

    def _log(self, source: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        x = self._samples.pop(source, None)
        if x is None or not self._due(trainer) or not self._supported(pl_module, x):
            return
        self._logged_epoch = trainer.current_epoch
        self._samples.clear()
        try:
            path = self._save(_figure(pl_module, x), trainer)
            _upload(path, trainer)
        except Exception as err:  # noqa: BLE001 - see the class docstring
            warnings.warn(f"LogReconstructions skipped epoch {trainer.current_epoch}: {err!r}", stacklevel=2)

    def _supported(self, pl_module: pl.LightningModule, x: torch.Tensor) -> bool:
        """Whether the model has the method ``x``'s figure needs; warns once when it has not."""
        needed = _NEEDED_METHOD.get(x.ndim)
        if needed is not None and callable(getattr(pl_module, needed, None)):
            return True
        if not self._warned:
            self._warned = True
            reason = f"has no {needed}()" if needed else f"gave inputs of unsupported shape {tuple(x.shape)}"
            warnings.warn(f"LogReconstructions does nothing: {type(pl_module).__name__} {reason}", stacklevel=2)
        return False

    def _save(self, figure: Figure, trainer: pl.Trainer) -> Path:
        path = Path(trainer.default_root_dir) / "reconstructions" / f"epoch={trainer.current_epoch:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, bbox_inches="tight")
        return path


#: The model method each input rank needs: tabular ``[B, F]`` or images with channels.
_NEEDED_METHOD = {2: "encode", 4: "reconstruct", 5: "reconstruct"}


def _figure(pl_module: pl.LightningModule, x: torch.Tensor) -> Figure:
    with torch.no_grad(), _evaluating(pl_module):
        if x.ndim == 2:
            return _latent_scatter(pl_module.encode(x)[0])
        return _image_pairs(x, pl_module.reconstruct(x))


@contextmanager
def _evaluating(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode for the figure (dropout, batch norm), then the mode training was in."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _latent_scatter(mu: torch.Tensor) -> Figure:
    mu = mu.detach().float().cpu()
    second = mu[:, 1] if mu.shape[1] > 1 else torch.zeros(len(mu))
    figure = Figure(figsize=(4, 4))
    ax = figure.subplots()
    ax.scatter(mu[:, 0].numpy(), second.numpy(), s=12)
    ax.set_xlabel("z[0] mean")
    ax.set_ylabel("z[1] mean")
    ax.set_title("latent means")
    return figure


def _image_pairs(x: torch.Tensor, x_hat: torch.Tensor) -> Figure:
    """Inputs on the top row, their reconstructions below, each pair on the input's grey scale."""
    figure = Figure(figsize=(1.5 * len(x), 3.2))
    axes = figure.subplots(2, len(x), squeeze=False)
    for column, (image, reconstruction) in enumerate(zip(x, x_hat)):
        original = _plane(image)
        for row, plane in enumerate((original, _plane(reconstruction))):
            axes[row, column].imshow(plane, cmap="gray", vmin=original.min(), vmax=original.max())
            axes[row, column].set_axis_off()
    axes[0, 0].set_title("input", loc="left", fontsize=8)
    axes[1, 0].set_title("reconstruction", loc="left", fontsize=8)
    return figure


def _plane(image: torch.Tensor) -> Any:
    """The first channel of a ``[C, H, W]`` image, or its middle z slice for ``[C, D, H, W]``."""
    plane = image[0]
    if plane.ndim == 3:
        plane = plane[plane.shape[0] // 2]
    return plane.detach().float().cpu().numpy()


def _upload(path: Path, trainer: pl.Trainer) -> None:
    for logger in trainer.loggers:  # an MLFlowLogger of either Lightning namespace
        if any(cls.__name__ == "MLFlowLogger" for cls in type(logger).__mro__):
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path="reconstructions")
