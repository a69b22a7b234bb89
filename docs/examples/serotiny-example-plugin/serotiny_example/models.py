"""A LightningModule that serotiny trains like any built-in model."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn


class LinearAutoencoder(pl.LightningModule):
    """A linear autoencoder ``x -> z -> x_hat`` trained on the mean squared error.

    Reads ``batch[x_label]`` of shape ``[B, x_dim]`` (a batch is a dict keyed
    like the datamodule's loaders); logs ``train_loss``, ``val_loss`` and
    ``test_loss`` per epoch; ``predict_step`` returns ``{"z": [B, latent_dim]}``,
    which ``serotiny predict`` writes as columns ``z_0``, ``z_1``...
    """

    def __init__(self, x_dim: int, latent_dim: int = 2, x_label: str = "x", lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()  # so load_from_checkpoint(path) rebuilds it
        self.x_label = x_label
        self.lr = lr
        self.encoder = nn.Linear(x_dim, latent_dim)
        self.decoder = nn.Linear(latent_dim, x_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        x = batch[self.x_label]
        loss = F.mse_loss(self(x), x)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=len(x),
                 prog_bar=True, sync_dist=True)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return {"z": self.encoder(batch[self.x_label])}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)
