"""The built-in serotiny components and their packaged configs.

Registered through this distribution's own ``serotiny.plugins`` entry point
(``serotiny_plugins.plugin``), exactly like a third-party plugin. Importing
this package imports nothing heavy: components load when a config uses them.
"""
