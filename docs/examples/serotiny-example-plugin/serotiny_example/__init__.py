"""An example serotiny plugin: a linear autoencoder, a loader and their configs."""

__version__ = "0.1.0"
