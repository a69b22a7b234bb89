"""A VAE for fixed-length feature vectors (one row of a table per sample)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from serotiny_plugins.models.base import OptimizerArg, SchedulerArg
from serotiny_plugins.models.vae import BaseVAE


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with ReLUs between them but not after the last, whose output is unbounded."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class TabularVAE(BaseVAE):
    """An MLP VAE on ``batch[x_label]`` of shape ``[B, x_dim]``.

    The decoder mirrors the encoder's ``hidden_layers``. ``predict_step``
    returns ``{"z_mean": [B, latent_dim], "z_logvar": [B, latent_dim]}``.
    """

    def __init__(
        self,
        x_dim: int,
        latent_dim: int,
        hidden_layers: Sequence[int],
        x_label: str = "x",
        optimizer: OptimizerArg = torch.optim.Adam,
        beta: float = 1.0,
        lr_scheduler: SchedulerArg | None = None,
        prior_logvar: float = 0.0,
    ) -> None:
        super().__init__(
            latent_dim=latent_dim,
            x_label=x_label,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            beta=beta,
            prior_logvar=prior_logvar,
        )
        self.save_config(locals())
        hidden = list(hidden_layers)
        self.encoder = mlp([x_dim, *hidden, 2 * latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), x_dim])
