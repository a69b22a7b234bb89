"""Loaders that read values from manifest columns.

A loader is a callable ``loader(row) -> array``; ``row`` maps column name to
value (a dict or a pandas Series). These loaders also offer
``load_frame(frame)``, one item per row of a whole split, because one
vectorised read at setup is what makes tabular training fast, and
``required_columns(frame_columns)``, so the datamodule reads only the
columns they use. Bad values raise a :class:`DataError` naming the column and
row: a NaN found by the loss three epochs in is much harder to trace.
"""

from __future__ import annotations

import numbers
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from serotiny_core import ConfigError, DataError

# Rows checked for NaN at a time: bounds the temporary boolean mask to a few MB.
_FINITE_CHUNK = 65536


def row_label(row: Mapping[str, Any]) -> str:
    """How to name ``row`` in a message: its label when it is a pandas Series."""
    return f"row {row.name}" if isinstance(row, pd.Series) else "this row"


def numpy_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a numpy dtype, or a ConfigError that says what is accepted."""
    try:
        return np.dtype(dtype)
    except TypeError as err:
        raise ConfigError(f"unknown dtype {dtype!r}", hint="use a numpy name such as 'float32'") from err


def require_columns(names: Iterable[str], available: Iterable[str], who: str) -> list[str]:
    """``names``, after checking the manifest has each of them."""
    names, available = list(names), list(available)
    known = set(available)
    missing = [n for n in names if n not in known]
    if missing:
        raise DataError(f"{who}: no column(s) {missing} in the manifest",
                        hint=f"available columns include {available[:10]}")
    return names


def _row_vector(row: Mapping[str, Any], names: Sequence[str], dtype: np.dtype) -> np.ndarray:
    """One row's values of ``names``, checked numeric and finite."""
    values = []
    for name in names:
        value = row[name]
        if not isinstance(value, numbers.Number):
            raise DataError(f"column '{name}' is not numeric: {row_label(row)} holds {value!r}",
                            hint="select numeric columns only (e.g. with excludes=[...])")
        values.append(value)
    vector = np.asarray(values, dtype=dtype)
    _check_finite(vector[None], names, lambda _: row_label(row))
    return vector


def _frame_matrix(frame: pd.DataFrame, names: Sequence[str], dtype: np.dtype) -> np.ndarray:
    """``frame[names]`` as one ``dtype`` array, checked numeric and finite.

    Converting the column selection directly avoids a float64 detour; for a
    frame whose selected columns are already one ``dtype`` block it is a view.
    """
    for name in names:
        _check_numeric(frame[name], name)
    values = frame[list(names)].to_numpy(dtype=dtype)
    _check_finite(values, names, _frame_rows(frame))
    return values


def _frame_rows(frame: pd.DataFrame) -> Callable[[int], str]:
    """Names a frame's row by position, for messages."""
    return lambda position: f"row {frame.index[position]}"


def _check_numeric(column: pd.Series, name: str) -> None:
    if pd.api.types.is_numeric_dtype(column.dtype):
        return
    failed = pd.to_numeric(column, errors="coerce").isna() & column.notna()
    offending = column[failed] if failed.any() else column
    raise DataError(f"column '{name}' is not numeric (dtype {column.dtype}): row "
                    f"{offending.index[0]} holds {offending.iloc[0]!r}",
                    hint="select numeric columns only (e.g. with excludes=[...])")


def _check_finite(values: np.ndarray, names: Sequence[str], where: Callable[[int], str]) -> None:
    """Raise naming the first NaN/inf's column and row."""
    if not np.issubdtype(values.dtype, np.floating):
        return
    table = values.reshape(len(values), -1)
    for start in range(0, len(table), _FINITE_CHUNK):
        bad = ~np.isfinite(table[start:start + _FINITE_CHUNK])
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(f"column '{names[col]}' holds {table[start + row, col]} at "
                            f"{where(start + row)}",
                            hint="drop or fill missing values in the manifest")


class LoadColumns:
    """Several numeric columns as one feature vector: an explicit list, or filters.

    Filters (``startswith``, ``endswith``, ``contains``, ``regex`` searched in
    the name) combine with AND and narrow ``columns`` when both are given;
    ``excludes`` removes names. An explicit list keeps its order; filters keep
    the manifest's.
    """

    def __init__(self, columns: Sequence[str] | None = None, startswith: str | None = None,
                 endswith: str | None = None, contains: str | None = None, regex: str | None = None,
                 excludes: Sequence[str] | None = None, dtype: str = "float32") -> None:
        self.columns = None if columns is None else [str(c) for c in as_list(columns)]
        self.startswith, self.endswith, self.contains = startswith, endswith, contains
        self.regex = regex
        self.excludes = [str(c) for c in as_list(excludes or [])]
        self.dtype = numpy_dtype(dtype)
        try:
            self._pattern = re.compile(regex) if regex is not None else None
        except re.error as err:
            raise ConfigError(f"LoadColumns regex {regex!r} is invalid: {err}") from err
        if self.columns is None and not self._filters():
            raise ConfigError("LoadColumns needs columns=[...] or a filter",
                              hint="use startswith, endswith, contains or regex")
        self._last: tuple[tuple[str, ...], list[str]] | None = None

    def _filters(self) -> dict[str, str]:
        named = {"startswith": self.startswith, "endswith": self.endswith,
                 "contains": self.contains, "regex": self.regex}
        return {k: v for k, v in named.items() if v is not None}

    def _matches(self, name: str) -> bool:
        return ((self.startswith is None or name.startswith(self.startswith))
                and (self.endswith is None or name.endswith(self.endswith))
                and (self.contains is None or self.contains in name)
                and (self._pattern is None or self._pattern.search(name) is not None)
                and name not in self.excludes)

    def required_columns(self, frame_columns: Iterable[str]) -> list[str]:
        """The selected columns among ``frame_columns`` (cached for the last frame seen)."""
        key = tuple(str(c) for c in frame_columns)
        if self._last is None or self._last[0] != key:
            self._last = (key, self._select(list(key)))
        return self._last[1]

    def _select(self, available: list[str]) -> list[str]:
        candidates = available
        if self.columns is not None:
            candidates = require_columns(self.columns, available, "LoadColumns")
        chosen = [name for name in candidates if self._matches(name)]
        if not chosen:
            described = ", ".join(f"{k}={v!r}" for k, v in self._filters().items())
            raise DataError(f"LoadColumns({described or f'columns={self.columns}'}"
                            f"{f', excludes={self.excludes}' if self.excludes else ''}) matches no column",
                            hint=f"available columns include {available[:10]}")
        return chosen

    def __call__(self, row: Mapping[str, Any]) -> np.ndarray:
        """A 1-D array of the selected columns' values."""
        return _row_vector(row, self.required_columns(row.keys()), self.dtype)

    def load_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """A (rows, columns) array."""
        return _frame_matrix(frame, self.required_columns(frame.columns), self.dtype)


class LoadColumn:
    """One numeric column; ``unsqueeze`` keeps a feature axis: (1,) per row, (N, 1) per frame."""

    def __init__(self, column: str, dtype: str = "float32", unsqueeze: bool = True) -> None:
        self.column = str(column)
        self.dtype = numpy_dtype(dtype)
        self.unsqueeze = unsqueeze

    def required_columns(self, frame_columns: Iterable[str]) -> list[str]:
        """Just ``column``, after checking it exists."""
        return require_columns([self.column], frame_columns, f"LoadColumn('{self.column}')")

    def __call__(self, row: Mapping[str, Any]) -> np.ndarray:
        """Shape (1,), or () without ``unsqueeze``."""
        value = _row_vector(row, self.required_columns(row.keys()), self.dtype)
        return value if self.unsqueeze else value[0]

    def load_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Shape (N, 1), or (N,) without ``unsqueeze``."""
        values = _frame_matrix(frame, self.required_columns(frame.columns), self.dtype)
        return values if self.unsqueeze else values[:, 0]


class LoadClass:
    """An integer class label as a one-hot vector of ``num_classes``.

    With ``binary`` the label itself (0 or 1) as shape (1,), the target a
    binary cross-entropy expects. Labels are checked whole and in range here,
    where the row can be named, rather than failing inside the loss.
    """

    def __init__(self, num_classes: int, y_encoded_label: str, binary: bool = False,
                 dtype: str = "float32") -> None:
        if int(num_classes) < 1:
            raise ConfigError(f"LoadClass num_classes must be at least 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.y_encoded_label = str(y_encoded_label)
        self.binary = binary
        self.dtype = numpy_dtype(dtype)

    def required_columns(self, frame_columns: Iterable[str]) -> list[str]:
        """Just the label column, after checking it exists."""
        return require_columns([self.y_encoded_label], frame_columns,
                               f"LoadClass('{self.y_encoded_label}')")

    def __call__(self, row: Mapping[str, Any]) -> np.ndarray:
        """Shape (num_classes,), or (1,) when ``binary``."""
        labels = _row_vector(row, self.required_columns(row.keys()), np.dtype("float64"))
        return self._encode(labels, lambda _: row_label(row))[0]

    def load_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Shape (N, num_classes), or (N, 1) when ``binary``."""
        self.required_columns(frame.columns)
        column = frame[self.y_encoded_label]
        _check_numeric(column, self.y_encoded_label)
        values = column.to_numpy()
        _check_finite(values, [self.y_encoded_label], _frame_rows(frame))
        return self._encode(values, _frame_rows(frame))

    def _encode(self, values: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
        limit = 2 if self.binary else self.num_classes
        classes = values.astype(np.int64)
        bad = (classes != values) | (classes < 0) | (classes >= limit)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(f"column '{self.y_encoded_label}' holds {values[first]} at "
                            f"{where(first)}, not a class label in 0..{limit - 1}",
                            hint="labels must be integers below num_classes (0 or 1 when binary)")
        if self.binary:
            return classes.astype(self.dtype)[:, None]
        encoded = np.zeros((len(classes), self.num_classes), dtype=self.dtype)
        encoded[np.arange(len(classes)), classes] = 1
        return encoded


def as_list(value: Any) -> list[Any]:
    """A list from a list, tuple or OmegaConf ListConfig; a lone string is one item."""
    return [value] if isinstance(value, str) else list(value)
