"""Built-in LightningModules: :class:`~serotiny_plugins.models.tabular_vae.TabularVAE`,
:class:`~serotiny_plugins.models.image_vae.ImageVAE` and
:class:`~serotiny_plugins.models.basic.BasicModel`.

Nothing is re-exported here: configs name the defining module in ``_target_``,
and importing one model should not pull in the others.
"""
