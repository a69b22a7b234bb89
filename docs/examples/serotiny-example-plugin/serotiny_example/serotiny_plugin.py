"""The module the ``serotiny.plugins`` entry point names: serotiny calls these hooks.

Keep this module light. serotiny imports it for every command, including
``serotiny list-components``, so it must not import torch or the components
themselves: a ``Component`` names its target as a string, imported only when a
config uses it.
"""

from serotiny_core import Component, hookimpl


@hookimpl
def serotiny_components():
    return [
        Component(
            kind="model",
            name="LinearAutoencoder",
            target="serotiny_example.models.LinearAutoencoder",
            aliases=["example.LinearAutoencoder"],
            description="A linear autoencoder on a feature vector",
        ),
        # A plain dict with the same keys works too.
        {
            "kind": "loader",
            "name": "LoadScaledColumns",
            "target": "serotiny_example.loaders:LoadScaledColumns",
            "description": "Columns by prefix, multiplied by a constant",
        },
    ]


@hookimpl
def serotiny_config_dirs():
    # Its groups (model/, data/, ...) become selectable in every project:
    # serotiny train model=linear_ae data=scaled_features
    return ["pkg://serotiny_example.config"]
