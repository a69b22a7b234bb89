"""A loader: ``loader(row) -> array`` for one manifest row, and optionally a whole frame."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd


class LoadScaledColumns:
    """The columns whose names start with ``prefix``, as float32, times ``scale``.

    ``__call__`` is all a loader needs. ``load_frame`` is optional: where it
    exists, ``ManifestDatamodule`` calls it once for the whole manifest
    instead of calling the loader row by row, which is much faster for tabular
    data. Both must give the same values.
    """

    def __init__(self, prefix: str, scale: float = 1.0) -> None:
        self.prefix = prefix
        self.scale = float(scale)

    def _columns(self, names: Any) -> list[str]:
        chosen = [str(name) for name in names if str(name).startswith(self.prefix)]
        if not chosen:
            raise ValueError(f"no column starts with {self.prefix!r}")
        return chosen

    def __call__(self, row: Mapping[str, Any]) -> np.ndarray:
        values = [row[name] for name in self._columns(row.keys())]
        return np.asarray(values, dtype=np.float32) * np.float32(self.scale)

    def load_frame(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame[self._columns(frame.columns)].to_numpy(dtype=np.float32)
        return values * np.float32(self.scale)
