"""The built-in models train, predict and survive a checkpoint round trip on CPU."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, StackDataset

from projects import SEED_MODEL
from serotiny_core.batch import INDEX_KEY
from serotiny_plugins.models.base import to_hparam
from serotiny_plugins.models.basic import BasicModel
from serotiny_plugins.models.image_vae import ImageVAE
from serotiny_plugins.models.tabular_vae import TabularVAE

# The seed's model YAML, its alias spelled as the import path Hydra needs without serotiny's registry.
SEED_YAML = SEED_MODEL.replace("serotiny.models.TabularVAE", "serotiny_plugins.models.tabular_vae.TabularVAE")

N_ROWS = 256


class LossHistory(pl.Callback):
    """Each epoch's ``train_loss``, to check that training helps."""

    def __init__(self) -> None:
        self.train_loss: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.train_loss.append(trainer.callback_metrics["train_loss"].item())


def loader(shuffle: bool = False, **columns: torch.Tensor) -> DataLoader:
    """Batches shaped like the real datamodule's: a dict per batch, with an index key models must ignore."""
    rows = len(next(iter(columns.values())))
    dataset = StackDataset(**columns, **{INDEX_KEY: torch.arange(rows)})
    return DataLoader(dataset, batch_size=32, shuffle=shuffle)


def fit(model: pl.LightningModule, tmp_path: Path, **columns: torch.Tensor) -> tuple[pl.Trainer, LossHistory]:
    """Two epochs with validation, EarlyStopping on ``val_loss`` and a checkpoint."""
    history = LossHistory()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=True,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[history, EarlyStopping(monitor="val_loss", patience=5)],
    )
    trainer.fit(model, loader(shuffle=True, **columns), loader(**columns))
    return trainer, history


def predict(model: pl.LightningModule, **columns: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run ``trainer.predict`` and concatenate the per-batch dicts."""
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    batches = trainer.predict(model, loader(**columns))
    return {key: torch.cat([batch[key] for batch in batches]) for key in batches[0]}


def assert_same_predictions(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def decay(epoch: int) -> float:
    """A module-level LambdaLR schedule: importable, so it is saved as a spec."""
    return 0.5**epoch


@pytest.fixture(autouse=True)
def _seed() -> None:
    pl.seed_everything(0, verbose=False)


@pytest.fixture
def tabular() -> torch.Tensor:
    """Rows on a noisy 2-D plane in 20 dims: a VAE with a 2-D latent space fits them well."""
    z = torch.randn(N_ROWS, 2)
    return z @ torch.randn(2, 20) + 0.1 * torch.randn(N_ROWS, 20)


# ----------------------------------------------------------------------------- TabularVAE


def test_seed_yaml_instantiates_verbatim() -> None:
    model = instantiate(OmegaConf.create(SEED_YAML))

    assert isinstance(model, TabularVAE)
    assert model.hparams.hidden_layers == [32, 32, 32]
    assert type(model.hparams.hidden_layers) is list
    assert model.hparams.optimizer == {"_target_": "torch.optim.adam.Adam", "_partial_": True, "lr": 1e-3}
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert model.encode(torch.randn(4, 100))[0].shape == (4, 16)


def test_tabular_vae_trains_and_round_trips(tabular: torch.Tensor, tmp_path: Path) -> None:
    model = TabularVAE(
        x_dim=20, latent_dim=2, hidden_layers=[16], optimizer=functools.partial(torch.optim.Adam, lr=1e-2)
    )
    trainer, history = fit(model, tmp_path, x=tabular)

    assert history.train_loss[-1] < history.train_loss[0]
    assert {"train_loss", "train_reconstruction", "train_kld", "val_loss", "val_kld"} <= set(trainer.callback_metrics)
    loaded = TabularVAE.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    predictions = predict(model, x=tabular)
    assert set(predictions) == {"z_mean", "z_logvar"}
    assert predictions["z_mean"].shape == (N_ROWS, 2)
    assert_same_predictions(predictions, predict(loaded, x=tabular))


@pytest.mark.parametrize(
    ("optimizer", "lr_scheduler"),
    [
        (torch.optim.SGD, None),
        (
            functools.partial(torch.optim.SGD, lr=0.01, momentum=0.9),
            functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=1),
        ),
        (torch.optim.Adam, functools.partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=decay)),
    ],
    ids=["class", "plateau", "lambda-function"],
)
def test_optimizer_forms_survive_plain_load(
    optimizer: object, lr_scheduler: object, tabular: torch.Tensor, tmp_path: Path
) -> None:
    """Classes and partials are saved as Hydra specs, so the default weights_only load accepts them."""
    model = TabularVAE(x_dim=20, latent_dim=2, hidden_layers=[8], optimizer=optimizer, lr_scheduler=lr_scheduler)
    trainer, _ = fit(model, tmp_path, x=tabular)

    loaded = TabularVAE.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    expected = model.configure_optimizers()
    rebuilt = loaded.configure_optimizers()
    if lr_scheduler is None:
        assert type(rebuilt) is type(expected)
    else:
        assert type(rebuilt["optimizer"]) is type(expected["optimizer"])
        assert type(rebuilt["lr_scheduler"]["scheduler"]) is type(expected["lr_scheduler"]["scheduler"])
        assert rebuilt["lr_scheduler"]["monitor"] == "val_loss"


def test_unserialisable_partial_is_kept_as_is() -> None:
    """No spec can hold a tensor argument: the partial stays, and loading it needs weights_only=False."""
    optimizer = functools.partial(torch.optim.SGD, lr=torch.tensor(0.1))
    assert to_hparam(optimizer) is optimizer


# ----------------------------------------------------------------------------- BasicModel


BASIC_SPEC_YAML = """
_target_: serotiny_plugins.models.basic.BasicModel
_recursive_: false
network:
  _target_: torch.nn.Linear
  in_features: 4
  out_features: 1
optimizer:
  _partial_: true
  _target_: torch.optim.Adam
  lr: 5e-2
"""


def test_basic_regression_trains_and_round_trips_from_spec(tmp_path: Path) -> None:
    """With ``_recursive_: false`` the network arrives as a spec, is saved, and the plain load rebuilds it."""
    x = torch.randn(N_ROWS, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.05 * torch.randn(N_ROWS)  # [B] labels for a [B, 1] output
    model = instantiate(OmegaConf.create(BASIC_SPEC_YAML))
    assert model.hparams.network == {"_target_": "torch.nn.Linear", "in_features": 4, "out_features": 1}
    trainer, history = fit(model, tmp_path, x=x, y=y)

    assert history.train_loss[-1] < history.train_loss[0]
    loaded = BasicModel.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    predictions = predict(model, x=x, y=y)
    assert set(predictions) == {"y_hat"}
    assert_same_predictions(predictions, predict(loaded, x=x, y=y))


CLASSES = 3


def class_targets(labels: torch.Tensor, form: str) -> torch.Tensor:
    return {
        "one-hot": nn.functional.one_hot(labels, CLASSES).float(),
        "index": labels,
        "float-column": labels.float().unsqueeze(1),
    }[form]


@pytest.mark.parametrize("form", ["one-hot", "index", "float-column"])
def test_basic_classification_target_forms(form: str, tmp_path: Path) -> None:
    x = torch.randn(N_ROWS, 4)
    labels = x[:, :CLASSES].argmax(dim=1)
    model = BasicModel(
        network=nn.Linear(4, CLASSES),
        loss=nn.CrossEntropyLoss(),
        optimizer=functools.partial(torch.optim.Adam, lr=5e-2),
    )
    _, history = fit(model, tmp_path, x=x, y=class_targets(labels, form))

    assert history.train_loss[-1] < history.train_loss[0]
    predictions = predict(model, x=x, y=class_targets(labels, form))
    assert predictions["y_hat"].shape == (N_ROWS, CLASSES)
    torch.testing.assert_close(predictions["y_prob"].sum(dim=1), torch.ones(N_ROWS))
    assert (predictions["y_prob"].argmax(dim=1) == labels).float().mean() > 0.7


def test_basic_module_arguments_are_given_again_at_load(tmp_path: Path) -> None:
    """Module arguments are not hyperparameters; a forgotten loss is reported, not silently swapped."""
    x = torch.randn(64, 4)
    y = x[:, :CLASSES].argmax(dim=1)
    model = BasicModel(network=nn.Linear(4, CLASSES), loss=nn.CrossEntropyLoss())
    trainer, _ = fit(model, tmp_path, x=x, y=y)
    path = trainer.checkpoint_callback.best_model_path

    assert "network" not in model.hparams and "loss" not in model.hparams
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        loaded = BasicModel.load_from_checkpoint(path, network=nn.Linear(4, CLASSES), loss=nn.CrossEntropyLoss())
    assert_same_predictions(predict(model, x=x, y=y), predict(loaded, x=x, y=y))
    with pytest.warns(UserWarning, match="pass loss="):
        BasicModel.load_from_checkpoint(path, network=nn.Linear(4, CLASSES))


# ----------------------------------------------------------------------------- ImageVAE


@pytest.mark.parametrize(
    ("mode", "input_dims", "max_pool_layers"),
    [("2d", [16, 32], [0, 1]), ("2d", [12, 12], [1]), ("3d", [8, 16, 16], [0, 1])],
)
def test_image_vae_shapes(mode: str, input_dims: list[int], max_pool_layers: list[int]) -> None:
    model = ImageVAE(
        latent_dim=5,
        in_channels=2,
        hidden_channels=[4, 8],
        max_pool_layers=max_pool_layers,
        input_dims=input_dims,
        mode=mode,
    )
    x = torch.randn(3, 2, *input_dims)

    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 5)
    assert model.reconstruct(x).shape == x.shape
    assert set(model.predict_step({"x": x, INDEX_KEY: torch.arange(3)}, 0)) == {"z_mean", "z_logvar"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_dims": [10, 16]}, "divisible"),
        ({"input_dims": [16, 16, 16]}, "needs 2 input_dims"),
        ({"mode": "4d"}, "mode must be"),
        ({"max_pool_layers": [2]}, "must index"),
        ({"kernel_size": 4}, "odd"),
    ],
)
def test_image_vae_rejects_inconsistent_shapes(changes: dict, message: str) -> None:
    arguments = {"latent_dim": 4, "in_channels": 1, "hidden_channels": [4, 4], "max_pool_layers": [0, 1]}
    with pytest.raises(ValueError, match=message):
        ImageVAE(**{"input_dims": [16, 16], **arguments, **changes})


@pytest.mark.parametrize(("mode", "input_dims"), [("2d", [16, 16]), ("3d", [8, 8, 8])])
def test_image_vae_trains_and_round_trips(mode: str, input_dims: list[int], tmp_path: Path) -> None:
    """Images are random brightnesses of one fixed pattern: an easy 1-D manifold."""
    pattern = torch.rand(1, 1, *input_dims)
    x = torch.rand(N_ROWS, 1, *[1] * len(input_dims)) * pattern
    model = ImageVAE(
        latent_dim=2,
        in_channels=1,
        hidden_channels=[4, 8],
        max_pool_layers=[0, 1],
        input_dims=input_dims,
        mode=mode,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
    )
    trainer, history = fit(model, tmp_path, x=x)

    assert history.train_loss[-1] < history.train_loss[0]
    loaded = ImageVAE.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert loaded.hparams.input_dims == input_dims
    assert_same_predictions(predict(model, x=x), predict(loaded, x=x))
