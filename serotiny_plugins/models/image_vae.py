"""A convolutional VAE for 2D or 3D images shaped ``[B, C, (D,) H, W]``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from serotiny_plugins.models.base import OptimizerArg, SchedulerArg
from serotiny_plugins.models.vae import BaseVAE

#: Per mode: the convolution, the 2x max-pool, and how many spatial dims it takes.
_MODES: dict[str, tuple[type[nn.Module], type[nn.Module], int]] = {
    "2d": (nn.Conv2d, nn.MaxPool2d, 2),
    "3d": (nn.Conv3d, nn.MaxPool3d, 3),
}


class ImageVAE(BaseVAE):
    """Conv encoder (conv + ReLU, 2x max-pool after the layers in ``max_pool_layers``),
    a linear bottleneck, and a decoder mirroring it with 2x nearest upsampling.

    ``input_dims`` is the spatial shape (``[H, W]`` or ``[D, H, W]``); each dim
    must be divisible by ``2 ** len(max_pool_layers)`` so the decoder gives the
    input's shape back. ``predict_step`` returns ``{"z_mean", "z_logvar"}``,
    each ``[B, latent_dim]``.
    """

    def __init__(
        self,
        latent_dim: int,
        in_channels: int,
        hidden_channels: Sequence[int],
        max_pool_layers: Sequence[int],
        input_dims: Sequence[int],
        x_label: str = "x",
        mode: str = "2d",
        kernel_size: int = 3,
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
        conv, pool = _check_mode(mode, input_dims)
        _check_kernel(kernel_size)
        channels = [in_channels, *hidden_channels]
        pooled = _check_pooled(max_pool_layers, len(hidden_channels))
        bottleneck = _bottleneck_dims(input_dims, len(pooled))
        flat = channels[-1] * math.prod(bottleneck)
        self.encoder = nn.Sequential(
            *_encoder_layers(conv, pool, channels, pooled, kernel_size),
            nn.Flatten(),
            nn.Linear(flat, 2 * latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, flat),
            nn.ReLU(),
            nn.Unflatten(1, (channels[-1], *bottleneck)),
            *_decoder_layers(conv, channels, pooled, kernel_size),
        )


def _check_mode(mode: str, input_dims: Sequence[int]) -> tuple[type[nn.Module], type[nn.Module]]:
    """The conv and pool classes for ``mode``, once ``input_dims`` is known to fit it."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}")
    conv, pool, n_dims = _MODES[mode]
    if len(input_dims) != n_dims:
        raise ValueError(f"mode {mode!r} needs {n_dims} input_dims, got {list(input_dims)}")
    return conv, pool


def _check_kernel(kernel_size: int) -> None:
    """Odd kernels with ``padding=kernel_size // 2`` keep the spatial shape; even ones do not."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")


def _check_pooled(max_pool_layers: Sequence[int], n_layers: int) -> set[int]:
    """The pooled layer indices, each naming one of the ``n_layers`` conv layers."""
    pooled = set(max_pool_layers)
    if not pooled <= set(range(n_layers)):
        raise ValueError(f"max_pool_layers {sorted(pooled)} must index the {n_layers} hidden_channels layers")
    return pooled


def _bottleneck_dims(input_dims: Sequence[int], n_pools: int) -> list[int]:
    """The spatial shape after ``n_pools`` halvings, which upsampling must be able to undo."""
    factor = 2**n_pools
    if any(dim % factor for dim in input_dims):
        raise ValueError(f"input_dims {list(input_dims)} must be divisible by 2**{n_pools} = {factor}")
    return [dim // factor for dim in input_dims]


def _encoder_layers(
    conv: type[nn.Module], pool: type[nn.Module], channels: list[int], pooled: set[int], kernel_size: int
) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        layers += [conv(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.ReLU()]
        if i in pooled:
            layers.append(pool(2))
    return layers


def _decoder_layers(conv: type[nn.Module], channels: list[int], pooled: set[int], kernel_size: int) -> list[nn.Module]:
    """The encoder's layers in reverse; no ReLU after the last conv, whose output is the image."""
    layers: list[nn.Module] = []
    for i in reversed(range(len(channels) - 1)):
        if i in pooled:
            layers.append(nn.Upsample(scale_factor=2))
        layers.append(conv(channels[i + 1], channels[i], kernel_size, padding=kernel_size // 2))
        if i:
            layers.append(nn.ReLU())
    return layers
