"""Reading a manifest and finding its splits, for :class:`ManifestDatamodule`.

A manifest is one CSV or parquet file with a split column, or a folder of
such files whose names are the splits (``train.csv``, ``valid.parquet``...).
Split names are canonicalised (``training`` -> ``train``, ``Validation`` ->
``val``...) so manifests written by different tools work unchanged; anything
else must be renamed with ``split_map`` rather than guessed. Every failure is
a :class:`DataError` naming the file and how to fix it, because a manifest is
the part of a run a user edits by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from serotiny_core import ConfigError, DataError

SPLITS = ("train", "val", "test")
LOADER_SPLITS = (*SPLITS, "predict")
DEFAULT_SPLIT_COLUMN = "split"
SUFFIXES = (".csv", ".parquet")
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}
# Float columns of a parquet manifest are decoded this many bytes at a time (4
# columns of 1M float32 rows), arrow holding ~3x that meanwhile: fewer columns
# at a time cost time, more cost memory (figures: bench/README.md, datamodule).
_DECODE_BYTES = 16 * 2**20
_TILE_ROWS = 4096  # matrix rows filled at a time from those columns
# A split with no loaders of its own borrows the nearest one: evaluation splits
# prefer evaluation loaders (no augmentation) over the training ones.
LOADER_FALLBACKS = {"val": ("train",), "test": ("val", "train"), "predict": ("test", "val", "train")}


@dataclass(frozen=True)
class Manifest:
    """All rows of a manifest, and each split's row positions in ``frame``.

    ``rows["predict"]`` is every row. Splits share ``frame`` rather than
    holding copies of it, so a large manifest is in memory once.
    """

    frame: pd.DataFrame
    rows: dict[str, np.ndarray]
    source: str

    def split_frame(self, split: str) -> pd.DataFrame:
        """The split's rows, in position order (what ``_index`` counts)."""
        rows = self.rows.get(split)
        if rows is None:
            raise DataError(f"manifest {self.source} has no {split} split")
        return self.frame if len(rows) == len(self.frame) else self.frame.iloc[rows]


def split_namer(split_map: Mapping[str, str] | None) -> Callable[[Any], str | None]:
    """A function from a raw split value to ``train``/``val``/``test`` (None: unknown)."""
    renames = {_key(k): _key(v) for k, v in dict(split_map or {}).items()}
    for raw, target in renames.items():
        if target not in SPLIT_ALIASES:
            raise ConfigError(f"split_map renames {raw!r} to {target!r}, which is not a split",
                              hint=f"rename to one of {list(SPLITS)}")

    def name(value: Any) -> str | None:
        key = _key(value)
        return SPLIT_ALIASES.get(renames.get(key, key))

    return name


def _key(value: Any) -> str:
    return str(value).strip().lower()


def manifest_columns(path: Path) -> list[str]:
    """Column names of a manifest (the union over a folder's files), without reading rows."""
    names: dict[str, None] = {}
    for file in _files(path):
        names.update(dict.fromkeys(_header(file)))
    return list(names)


def read_manifest(path: Path, split_column: str | None, split_map: Mapping[str, str] | None,
                  just_inference: bool, columns: Iterable[str] | None) -> Manifest:
    """Read ``path`` (file or folder) and find each split's rows.

    ``columns`` limits what is read; the split column is added to it. With
    ``just_inference`` no split column is needed: test and predict are all rows.
    """
    namer = split_namer(split_map)
    column = split_column or DEFAULT_SPLIT_COLUMN
    files = _files(path)
    available = manifest_columns(path)
    if not (just_inference or path.is_dir() or column in available):
        raise DataError(f"manifest {path} has no split column '{column}'; its columns are "
                        f"{_some(available)}",
                        hint="set split_column to the column naming each row's split, "
                             "or just_inference=true to predict on every row")
    wanted = None
    if columns is not None:
        check_columns(columns, available, "columns", str(path))
        wanted = list(dict.fromkeys([*columns, column]))
    if path.is_dir():
        frame = _read_folder(path, files, column, namer, just_inference, wanted)
    else:
        frame = _read_file(path, wanted)
    if frame.empty:
        raise DataError(f"manifest {path} has no rows")
    if just_inference:
        everything = np.arange(len(frame))
        return Manifest(frame, {"test": everything, "predict": everything}, str(path))
    return Manifest(frame, _split_rows(frame[column], namer, f"{path}, column '{column}'"), str(path))


def _split_rows(values: pd.Series, namer: Callable[[Any], str | None], where: str) -> dict[str, np.ndarray]:
    """Positions of each split, canonicalising each distinct value once (fast on 1M rows)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    names = [namer(u) for u in uniques]
    unknown = [u for u, name in zip(uniques, names) if name is None]
    if unknown:
        raise DataError(f"{where}: unknown split values {_some(unknown)}",
                        hint=f"use {sorted(SPLIT_ALIASES)} (any case), or rename others with "
                             f"split_map, e.g. split_map={{{str(unknown[0])!r}: 'test'}}")
    rows = {split: np.flatnonzero(np.isin(codes, [i for i, n in enumerate(names) if n == split]))
            for split in SPLITS}
    rows["predict"] = np.arange(len(values))
    return rows


def _read_folder(folder: Path, files: list[Path], column: str, namer: Callable[[Any], str | None],
                 just_inference: bool, wanted: list[str] | None) -> pd.DataFrame:
    """Concatenate a folder's files (train, val, test order); the file names become the split column."""
    if just_inference:
        named = {file.name: file for file in files}
    else:
        named = {split: file for file, split in _files_by_split(folder, files, namer)}
        named = {split: named[split] for split in SPLITS if split in named}
    frames = [_read_file(file, wanted) for file in named.values()]
    if not just_inference:
        frames = [frame.assign(**{column: split}) for frame, split in zip(frames, named)]
    # Index labels (file name, row in file) make error messages point into the right file.
    return pd.concat(frames, keys=[file.name for file in named.values()], names=["file", "row"])


def _files_by_split(folder: Path, files: list[Path],
                    namer: Callable[[Any], str | None]) -> list[tuple[Path, str]]:
    pairs = [(file, namer(file.name[: -len(file.suffix)])) for file in files]
    unknown = [file.name for file, split in pairs if split is None]
    if unknown:
        raise DataError(f"manifest folder {folder}: file names {unknown} are not splits",
                        hint=f"name files after a split ({sorted(SPLIT_ALIASES)}) or map them "
                             "with split_map, e.g. split_map={'holdout': 'test'}")
    splits = [split for _, split in pairs]
    doubled = sorted({s for s in splits if splits.count(s) > 1})
    if doubled:
        raise DataError(f"manifest folder {folder} has several files for the {doubled} split(s)",
                        hint="keep one file per split")
    return pairs


def _files(path: Path) -> list[Path]:
    """The manifest files at ``path``: itself, or a folder's CSV and parquet files."""
    if not path.exists():
        raise DataError(f"manifest {path} does not exist",
                        hint="set data.path to a CSV or parquet file, or a folder of them")
    if not path.is_dir():
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(f"manifest {path} is not a CSV or parquet file",
                            hint="manifests must end in .csv or .parquet")
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(f"manifest folder {path} holds no .csv or .parquet files")
    return files


def _header(file: Path) -> list[str]:
    try:
        if file.suffix.lower() == ".csv":
            return [str(c) for c in pd.read_csv(file, nrows=0).columns]
        import pyarrow.parquet as pq

        return [n for n in pq.read_schema(file).names if not n.startswith("__index_level_")]
    except pd.errors.EmptyDataError:
        raise DataError(f"manifest {file} is empty") from None
    except Exception as err:  # pandas and pyarrow raise many types for a bad file
        raise DataError(f"cannot read manifest {file}: {err}") from err


def _read_file(file: Path, wanted: list[str] | None) -> pd.DataFrame:
    """One CSV or parquet file; only ``wanted`` columns (those it has) when given."""
    keep = None if wanted is None else set(wanted)
    columns = None if keep is None else [c for c in _header(file) if c in keep]
    try:
        if file.suffix.lower() == ".csv":
            frame = pd.read_csv(file, usecols=columns)
        else:
            frame = _read_parquet(file, _header(file) if columns is None else columns)
    except pd.errors.EmptyDataError:
        raise DataError(f"manifest {file} is empty") from None
    except Exception as err:  # pandas and pyarrow raise many types for a bad file
        raise DataError(f"cannot read manifest {file}: {err}") from err
    return _positional(frame)


def _positional(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` indexed by position; a stored index is data, kept as leading columns."""
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    return frame.set_axis(pd.RangeIndex(len(frame)), axis=0)


def _read_parquet(file: Path, columns: list[str]) -> pd.DataFrame:
    """``columns`` of a parquet file, its float columns views of one row-major matrix per dtype.

    ``pd.read_parquet`` held the arrow table and the frame converted from it at
    once, and arrow's allocator kept the freed pages. Decoding the float
    columns a few at a time straight into their matrix keeps the peak near the
    data itself (figures: bench/README.md, datamodule), and
    ``load_frame`` of those columns is then a view with rows contiguous, as a
    shuffled batch gathers them. The other columns (ids, paths, the split, a
    stored index) are read by pandas, as before.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(file)
    floats = _plain_floats(parquet.schema_arrow, columns)
    plain = {name for names in floats.values() for name in names}
    others = [c for c in columns if c not in plain]
    read = pd.read_parquet(file, columns=others, pre_buffer=False)
    pa.default_memory_pool().release_unused()  # else arrow's allocator keeps the decoded pages
    if len(read) != parquet.metadata.num_rows:  # no column read and no stored index: no rows either
        read = pd.DataFrame(index=pd.RangeIndex(parquet.metadata.num_rows))
    rest = _positional(read)
    index = list(rest.columns[:rest.shape[1] - read.shape[1]])
    matrices = [_float_matrix(parquet, names, dtype) for dtype, names in floats.items()]
    frame = pd.concat([rest, *matrices], axis=1)
    return frame[[*index, *(c for c in columns if c not in index)]]


def _plain_floats(schema: Any, columns: list[str]) -> dict[np.dtype, list[str]]:
    """The float columns pandas would read as numpy floats, by dtype, in ``columns`` order.

    Not a stored index, nor a column pandas wrote with another dtype (e.g. its
    nullable ``Float32``): those are left to pandas.
    """
    import pyarrow as pa

    meta = schema.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    numpy_types = {c.get("field_name"): c.get("numpy_type") for c in meta.get("columns", [])}
    floats: dict[np.dtype, list[str]] = {}
    for name in columns:
        kind = schema.field(name).type
        if not pa.types.is_floating(kind) or name in index:
            continue
        dtype = np.dtype(kind.to_pandas_dtype())
        if numpy_types.get(name, dtype.name) == dtype.name:
            floats.setdefault(dtype, []).append(name)
    return floats


def _float_matrix(parquet: Any, names: list[str], dtype: np.dtype) -> pd.DataFrame:
    """``names`` decoded a few columns at a time into a (rows, columns) matrix; the frame is its view."""
    import pyarrow as pa

    matrix = np.empty((parquet.metadata.num_rows, len(names)), dtype=dtype)
    step = max(1, _DECODE_BYTES // max(1, len(matrix) * dtype.itemsize))
    for first in range(0, len(names), step):
        _fill_columns(matrix, first, parquet, names[first:first + step])
        pa.default_memory_pool().release_unused()  # else arrow's allocator keeps each group's pages
    return pd.DataFrame(matrix, columns=names, copy=False)


def _fill_columns(matrix: np.ndarray, first: int, parquet: Any, names: list[str]) -> None:
    """Decode ``names`` into ``matrix`` from its column ``first``, a tile of rows at a time.

    The tile's rows stay in cache while each column writes its part: writing
    whole columns down a row-major matrix is strided, and took about twice the CPU.
    """
    group = parquet.read(columns=names)
    columns = [group.column(name).to_numpy() for name in names]  # nulls: NaN
    for start in range(0, len(matrix), _TILE_ROWS):
        for j, values in enumerate(columns, first):
            matrix[start:start + _TILE_ROWS, j] = values[start:start + _TILE_ROWS]


def check_columns(wanted: Iterable[str], available: list[str], what: str, source: str) -> None:
    """Raise a DataError naming the columns of ``wanted`` the manifest lacks."""
    known = set(available)
    missing = [c for c in wanted if c not in known]
    if missing:
        raise DataError(f"{what}: manifest {source} has no column(s) {missing}; its columns are "
                        f"{_some(available)}")


def _some(values: Iterable[Any], limit: int = 12) -> str:
    values = [str(v) for v in values]
    more = f" ... ({len(values)} in all)" if len(values) > limit else ""
    return f"{values[:limit]}{more}"


def loaders_per_split(spec: Any) -> dict[str, dict[str, Callable[..., Any]]]:
    """Normalise ``loaders`` to ``{split: {batch key: loader}}``.

    ``spec`` is one dict for every split, or a dict keyed by split whose values
    are such dicts or the name of another split to reuse. Splits without an
    entry borrow one (see ``LOADER_FALLBACKS``). Splits that share loaders get
    the same objects, so the datamodule loads their data once.
    """
    spec = _as_dict(spec, "loaders")
    by_split = {_loader_split(k): v for k, v in spec.items()}
    if not spec or None in by_split or not all(isinstance(v, (str, Mapping)) for v in spec.values()):
        shared = _checked_loaders(spec, "loaders")
        return {split: shared for split in LOADER_SPLITS}
    resolved = {split: _resolve(split, by_split, ()) for split in by_split}
    for split, fallbacks in LOADER_FALLBACKS.items():
        borrowed = next((resolved[f] for f in fallbacks if f in resolved), None)
        if split not in resolved and borrowed is not None:
            resolved[split] = borrowed
    return resolved


def _loader_split(key: Any) -> str | None:
    return "predict" if _key(key) == "predict" else SPLIT_ALIASES.get(_key(key))


def _resolve(split: str, by_split: Mapping[str, Any], seen: tuple[str, ...]) -> dict[str, Callable[..., Any]]:
    value = by_split[split]
    if not isinstance(value, str):
        return _checked_loaders(value, f"loaders.{split}")
    target = _loader_split(value)
    if target not in by_split or target in (*seen, split):
        raise ConfigError(f"loaders.{split} reuses {value!r}, which is not another split's loaders",
                          hint=f"name one of {[s for s in by_split if s != split]}")
    return _resolve(target, by_split, (*seen, split))


def _checked_loaders(value: Any, where: str) -> dict[str, Callable[..., Any]]:
    loaders = _as_dict(value, where)
    if not loaders:
        raise ConfigError(f"{where} is empty", hint="map each batch key to a loader")
    for key, loader in loaders.items():
        if not callable(loader):
            raise ConfigError(f"{where}.{key} is a {type(loader).__name__}, not a loader",
                              hint="give it a _target_ (e.g. LoadColumns) so it is instantiated")
    return loaders


def _as_dict(value: Any, where: str) -> dict[str, Any]:
    """A plain dict from a dict or an OmegaConf DictConfig (which is a Mapping)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of batch key to loader, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}
