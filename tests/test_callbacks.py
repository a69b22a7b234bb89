"""LogReconstructions writes readable figures during real training, and never breaks it."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import MLFlowLogger
from torch import nn
from torch.utils.data import DataLoader, StackDataset

from serotiny_plugins.callbacks import LogReconstructions
from serotiny_plugins.models.basic import BasicModel
from serotiny_plugins.models.image_vae import ImageVAE
from serotiny_plugins.models.tabular_vae import TabularVAE


def batches(**columns: torch.Tensor) -> DataLoader:
    return DataLoader(StackDataset(**columns), batch_size=16)


def train(
    model: pl.LightningModule,
    callback: LogReconstructions,
    tmp_path: Path,
    with_val: bool = True,
    logger: pl.loggers.Logger | bool = False,
    **columns: torch.Tensor,
) -> None:
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[callback],
    )
    trainer.fit(model, batches(**columns), batches(**columns) if with_val else None)


def figures(tmp_path: Path) -> list[str]:
    """The figure names written, after checking each one opens as a PNG."""
    paths = sorted((tmp_path / "reconstructions").glob("*.png"))
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size[0] > 0 and image.size[1] > 0
    return [path.name for path in paths]


def tabular_vae() -> TabularVAE:
    return TabularVAE(x_dim=6, latent_dim=2, hidden_layers=[8])


@pytest.mark.parametrize("with_val", [True, False], ids=["val-batch", "train-batch-fallback"])
def test_tabular_latent_scatter_every_epoch(with_val: bool, tmp_path: Path) -> None:
    train(tabular_vae(), LogReconstructions(), tmp_path, with_val=with_val, x=torch.randn(48, 6))

    assert figures(tmp_path) == ["epoch=000.png", "epoch=001.png"]


@pytest.mark.parametrize(("mode", "input_dims"), [("2d", [8, 8]), ("3d", [4, 8, 8])])
def test_image_reconstructions(mode: str, input_dims: list[int], tmp_path: Path) -> None:
    model = ImageVAE(
        latent_dim=2,
        in_channels=2,
        hidden_channels=[4],
        max_pool_layers=[0],
        input_dims=input_dims,
        mode=mode,
        x_label="image",
    )
    train(model, LogReconstructions(n_samples=3), tmp_path, image=torch.rand(32, 2, *input_dims))

    assert figures(tmp_path) == ["epoch=000.png", "epoch=001.png"]


def test_every_n_epochs_and_own_x_label(tmp_path: Path) -> None:
    """The callback's x_label picks the input when the batch holds several tensors."""
    callback = LogReconstructions(every_n_epochs=2, x_label="x")
    train(tabular_vae(), callback, tmp_path, x=torch.randn(48, 6), image=torch.rand(48, 1, 4, 4))

    assert figures(tmp_path) == ["epoch=001.png"]


def test_model_without_encode_warns_once_and_training_goes_on(tmp_path: Path) -> None:
    model = BasicModel(network=nn.Linear(6, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model, LogReconstructions(), tmp_path, x=torch.randn(48, 6), y=torch.randn(48, 1))

    ours = [str(w.message) for w in caught if "LogReconstructions" in str(w.message)]
    assert ours == ["LogReconstructions does nothing: BasicModel has no encode()"]
    assert not (tmp_path / "reconstructions").exists()


class BrokenReconstruction(ImageVAE):
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no picture today")


def test_plotting_failure_only_warns(tmp_path: Path) -> None:
    model = BrokenReconstruction(
        latent_dim=2, in_channels=1, hidden_channels=[4], max_pool_layers=[], input_dims=[4, 4]
    )
    with pytest.warns(UserWarning, match="skipped epoch 1: RuntimeError"):
        train(model, LogReconstructions(), tmp_path, x=torch.rand(32, 1, 4, 4))

    assert figures(tmp_path) == []


def test_figure_is_uploaded_to_mlflow(tmp_path: Path) -> None:
    logger = MLFlowLogger(
        experiment_name="reconstructions",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_location=str(tmp_path / "artifacts"),
    )
    train(tabular_vae(), LogReconstructions(every_n_epochs=2), tmp_path, logger=logger, x=torch.randn(48, 6))

    uploaded = logger.experiment.list_artifacts(logger.run_id, "reconstructions")
    assert [artifact.path for artifact in uploaded] == ["reconstructions/epoch=001.png"]
