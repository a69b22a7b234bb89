"""What the tabular and image VAEs share: the reparameterisation, the ELBO and
the encode/decode plumbing. Subclasses only build ``encoder`` and ``decoder``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from serotiny_plugins.models.base import BaseModel, OptimizerArg, SchedulerArg


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Sample ``z ~ N(mu, exp(logvar))`` as ``mu + sigma * eps`` so gradients reach the encoder."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, prior_logvar: float = 0.0) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, exp(prior_logvar)))`` per sample, summed over latent dims."""
    prior_var = math.exp(prior_logvar)
    return 0.5 * (prior_logvar - logvar + (logvar.exp() + mu.pow(2)) / prior_var - 1).sum(dim=1)


class BaseVAE(BaseModel):
    """A Gaussian VAE trained on the ELBO: summed-squared-error reconstruction + beta * KL.

    Subclasses set ``self.encoder`` (x -> ``[B, 2 * latent_dim]``: means, then
    log-variances) and ``self.decoder`` (z -> x_hat). Both terms are summed over
    features and averaged over the batch, so ``beta`` weighs them as in the
    beta-VAE paper whatever the batch size. Logs ``*_loss``,
    ``*_reconstruction`` and ``*_kld``.
    """

    encoder: nn.Module
    decoder: nn.Module

    def __init__(
        self,
        latent_dim: int,
        x_label: str,
        optimizer: OptimizerArg,
        lr_scheduler: SchedulerArg | None,
        beta: float,
        prior_logvar: float,
    ) -> None:
        super().__init__(x_label=x_label, optimizer=optimizer, lr_scheduler=lr_scheduler)
        self.latent_dim = latent_dim
        self.beta = beta
        self.prior_logvar = prior_logvar

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's ``(mu, logvar)``, each ``[B, latent_dim]``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent codes back to input space."""
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: the deterministic reconstruction callbacks show."""
        return self.decode(self.encode(x)[0])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A sampled reconstruction with the ``(mu, logvar)`` it came from."""
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar)), mu, logvar

    def losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch[self.x_label]
        x_hat, mu, logvar = self(x)
        reconstruction = F.mse_loss(x_hat, x, reduction="sum") / len(x)
        kld = kl_divergence(mu, logvar, self.prior_logvar).mean()
        return {"loss": reconstruction + self.beta * kld, "reconstruction": reconstruction, "kld": kld}

    def predict_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """The latent means (the embeddings) and log-variances of the batch."""
        mu, logvar = self.encode(batch[self.x_label])
        return {"z_mean": mu, "z_logvar": logvar}
