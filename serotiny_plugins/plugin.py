"""Hook implementations that declare the built-in components.

The seed's names (``serotiny.models.TabularVAE``,
``serotiny.datamodules.ManifestDatamodule``,
``serotiny.io.dataframe.loaders.LoadColumns``...) are aliases, so configs
written for the original serotiny resolve unchanged.
"""

from __future__ import annotations

from serotiny_core import Component, hookimpl

_MODELS = {
    "TabularVAE": ("serotiny_plugins.models.tabular_vae.TabularVAE",
                   "Variational autoencoder on tabular features; predicts latent means"),
    "BasicModel": ("serotiny_plugins.models.basic.BasicModel",
                   "Any torch.nn network with a loss: regression or classification"),
    "ImageVAE": ("serotiny_plugins.models.image_vae.ImageVAE",
                 "Convolutional variational autoencoder for 2D or 3D images"),
}

_LOADERS = {
    "LoadColumns": ("serotiny_plugins.loaders.LoadColumns",
                    "Several columns as one feature vector (by list, prefix, suffix, regex)"),
    "LoadColumn": ("serotiny_plugins.loaders.LoadColumn", "One column as a value"),
    "LoadClass": ("serotiny_plugins.loaders.LoadClass", "An integer label as one-hot (or binary)"),
    "LoadImage": ("serotiny_plugins.images.LoadImage",
                  "An image file (TIFF, OME-TIFF, .npy, PNG, JPEG; OME-Zarr, CZI, ND2... "
                  "with serotiny[bioio]), channels first"),
}

_LIGHTNING_CALLBACKS = {
    "EarlyStopping": "Stop when a monitored metric stops improving",
    "ModelCheckpoint": "Save checkpoints (last and best by a monitored metric)",
    "LearningRateMonitor": "Log the learning rate of each optimizer",
    "RichProgressBar": "A progress bar drawn with rich",
}


def _models() -> list[Component]:
    return [Component(kind="model", name=name, target=target, description=text,
                      aliases=(f"serotiny.models.{name}",))
            for name, (target, text) in _MODELS.items()]


def _loaders() -> list[Component]:
    return [Component(kind="loader", name=name, target=target, description=text,
                      aliases=(f"serotiny.io.dataframe.loaders.{name}",))
            for name, (target, text) in _LOADERS.items()]


def _callbacks() -> list[Component]:
    lightning = [Component(kind="callback", name=name, description=text,
                           target=f"pytorch_lightning.callbacks.{name}")
                 for name, text in _LIGHTNING_CALLBACKS.items()]
    return lightning + [Component(
        kind="callback", name="LogReconstructions",
        target="serotiny_plugins.callbacks.LogReconstructions",
        aliases=("serotiny.callbacks.LogReconstructions",),
        description="Save a PNG of inputs beside reconstructions (or a latent scatter)")]


@hookimpl
def serotiny_components() -> list[Component]:
    datamodule = Component(
        kind="datamodule", name="ManifestDatamodule",
        target="serotiny_plugins.datamodule.ManifestDatamodule",
        aliases=("serotiny.datamodules.ManifestDatamodule", "serotiny.datamodule.ManifestDatamodule"),
        description="Datasets described by a CSV or parquet manifest, one loader per batch key")
    return [*_models(), datamodule, *_loaders(), *_callbacks()]


@hookimpl
def serotiny_config_dirs() -> list[str]:
    return ["pkg://serotiny_plugins.config"]
