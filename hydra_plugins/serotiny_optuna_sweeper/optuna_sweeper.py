"""The class ``hydra/sweeper=serotiny_optuna`` names.

Hydra instantiates sweepers only from the ``hydra_plugins`` package and
imports every module here on start-up, so this one stays light: the
sweeper is :class:`serotiny_core.optuna_sweeper.OptunaSweeper`, which
imports Optuna only when it runs.
"""

from serotiny_core.optuna_sweeper import OptunaSweeper


class SerotinyOptunaSweeper(OptunaSweeper):
    """Hydra's name for :class:`serotiny_core.optuna_sweeper.OptunaSweeper`."""
