"""``ManifestDatamodule``: batches from a manifest, one loader per batch key.

Speed comes from doing work once. At setup a loader with ``load_frame`` reads
the whole manifest once, into one row-contiguous tensor that every split
shares (for float columns of a parquet manifest, a view of the frame's own
memory); a batch is then one gather per key of the split's rows, because the
dataset takes a whole batch of positions (``__getitems__``) and there is no
per-item collate. Loaders with only ``__call__`` (images, third-party
loaders) run per row, in DataLoader workers, on plain dicts built from numpy
column arrays.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, default_collate,
                              get_worker_info)

from serotiny_core import INDEX_KEY, ConfigError, DataError, SerotinyError
from serotiny_plugins.loaders import as_list
from serotiny_plugins.manifest import (LOADER_SPLITS, Manifest, check_columns, loaders_per_split,
                                       manifest_columns, read_manifest, split_namer)

Loader = Callable[[Mapping[str, Any]], Any]
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class ManifestDataset(Dataset):
    """One split; ``dataset[positions]`` with a list of positions is a whole batch.

    Position ``p`` is manifest row ``rows[p]``. ``sources`` maps batch key to
    a tensor with one item per manifest row (gathered at ``rows[positions]``:
    a split needs no copy of its rows) or to a per-row loader, called on the
    ``columns`` values of that row.
    """

    def __init__(self, split: str, rows: torch.Tensor, sources: Mapping[str, torch.Tensor | Loader],
                 columns: Mapping[str, np.ndarray], labels: pd.Index) -> None:
        self.split = split
        self.rows = rows
        self.sources = dict(sources)
        self.columns = dict(columns)
        self.labels = labels
        self.per_row = any(not isinstance(s, torch.Tensor) for s in self.sources.values())

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        """A batch: what a DataLoader with a batch sampler asks for."""
        return self[positions]

    def __getitem__(self, index: int | Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """One item for an int, a batch (with a leading axis) for a list of positions."""
        index = torch.as_tensor(index, dtype=torch.long)
        manifest_rows = torch.index_select(self.rows, 0, index.reshape(-1))
        rows = manifest_rows.tolist() if self.per_row else []
        records = [{c: values[r] for c, values in self.columns.items()} for r in rows]
        batch = {}
        for key, source in self.sources.items():
            if isinstance(source, torch.Tensor):
                batch[key] = torch.index_select(source, 0, manifest_rows)  # faster than source[rows]
            else:
                batch[key] = self._stack(key, [self._call(key, source, row, record)
                                               for row, record in zip(rows, records)])
        if index.ndim == 0:
            batch = {key: value[0] for key, value in batch.items()}
        # From a worker, as a list: ManifestDataLoader makes it a tensor again (see there).
        batch[INDEX_KEY] = index.tolist() if get_worker_info() is not None else index
        return batch

    def _call(self, key: str, loader: Loader, row: int, record: Mapping[str, Any]) -> torch.Tensor:
        try:
            return torch.as_tensor(loader(record))
        except Exception as err:  # name the row, whatever the (third-party) loader raised
            raise DataError(f"loader '{key}' failed on row {self.labels[row]} of the {self.split} "
                            f"split: {err}", hint=getattr(err, "hint", None)) from err

    def _stack(self, key: str, items: list[torch.Tensor]) -> torch.Tensor:
        """The items as one batch tensor: default_collate's stack, which in a DataLoader
        worker writes straight into shared memory (a plain stack would be copied there
        again to reach the main process)."""
        try:
            return default_collate(items)
        except RuntimeError as err:
            shapes = sorted({tuple(item.shape) for item in items})
            raise DataError(f"loader '{key}' gave items of different shapes {shapes} in one "
                            f"{self.split} batch",
                            hint="make them one size (e.g. a resize transform) or use batch_size=1") from err


class ManifestBatchSampler(BatchSampler):
    """A BatchSampler subclass: Lightning rebuilds subclasses around its DistributedSampler
    under DDP, where it would replace a plain one's sampler and break batching.

    Over a plain random or sequential order it hands out slices of one index
    tensor: building a list of 256 Python ints per batch cost a third of the
    loader's time at 1M rows. Batches bound for DataLoader workers go as
    lists (``as_lists``): a tensor sent to a worker travels through shared
    memory and a file-descriptor handshake, which cost more than the list.
    """

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool, as_lists: bool = False) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.as_lists = as_lists

    def __iter__(self) -> Iterator[Any]:
        order = self._order()
        if order is None:  # e.g. Lightning's DistributedSampler under DDP
            yield from super().__iter__()
            return
        stop = len(order) - (len(order) % self.batch_size if self.drop_last else 0)
        for start in range(0, stop, self.batch_size):
            batch = order[start:start + self.batch_size]
            yield batch.tolist() if self.as_lists else batch

    def _order(self) -> torch.Tensor | None:
        sampler = self.sampler
        if isinstance(sampler, SequentialSampler):
            return torch.arange(len(sampler.data_source))
        if isinstance(sampler, RandomSampler) and not sampler.replacement and sampler._num_samples is None:
            return torch.randperm(len(sampler.data_source), generator=sampler.generator)
        return None


class ManifestDataLoader(DataLoader):
    """A DataLoader whose batches' ``_index`` is a LongTensor, however it was made.

    Each tensor a DataLoader worker hands back travels through a shared-memory
    segment and a file-descriptor handshake of its own; for ``_index``, a few
    hundred bytes, that cost ~7% of a batch of small images. Workers send it
    as a list, and it becomes a tensor here, in the main process.
    """

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        return batches if self.num_workers == 0 else _IndexAsTensor(batches)


class _IndexAsTensor:
    """Torch's worker iterator, with each batch's ``_index`` list made a tensor; what else
    is asked of it (``_shutdown_workers``, ``len``) goes to torch's iterator."""

    def __init__(self, batches: Any) -> None:
        self._batches = batches

    def __iter__(self) -> "_IndexAsTensor":
        return self

    def __next__(self) -> Any:
        batch = next(self._batches)
        if isinstance(batch, dict) and isinstance(batch.get(INDEX_KEY), (list, int)):
            batch[INDEX_KEY] = torch.as_tensor(batch[INDEX_KEY], dtype=torch.long)
        return batch

    def __len__(self) -> int:
        return len(self._batches)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batches, name)


def keep_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The collate function: ``__getitems__`` already returns a batch."""
    return batch


def _gatherable(whole: torch.Tensor, shuffled: bool) -> torch.Tensor:
    """A whole-manifest tensor as a split reads it: row-contiguous when shuffled.

    A shuffled batch gathered from a column-major view (what pandas gives for
    the float block of a CSV manifest) is an order of magnitude slower; batches read in order
    are fast either way, so they keep ``whole`` as it is, sharing the frame's
    memory. A parquet manifest's float columns are row-major already: no copy.
    """
    return whole.contiguous() if shuffled else whole


class ManifestDatamodule(pl.LightningDataModule):
    """Train, val, test and predict batches from a CSV/parquet manifest or a folder of them.

    Batches are dicts of tensors keyed like ``loaders``, plus ``_index``: the
    rows' positions in :meth:`frame` of that split, so predictions can be
    joined back to :meth:`identifiers`.
    """

    def __init__(self, path: str | Path, loaders: Mapping[str, Any], split_column: str | None = None,
                 columns: Sequence[str] | None = None, split_map: Mapping[str, str] | None = None,
                 just_inference: bool = False, batch_size: int = 64, num_workers: int = 0,
                 pin_memory: bool = False, drop_last: bool = False, shuffle: bool = True,
                 persistent_workers: bool = False, id_columns: Sequence[str] | None = None,
                 seed: int | None = None, **dataloader_kwargs: Any) -> None:
        super().__init__()
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.path = Path(path)
        self.loaders = loaders_per_split(loaders)
        self.split_column = split_column
        self.columns = None if columns is None else as_list(columns)
        self.split_map = None if split_map is None else dict(split_map)
        split_namer(self.split_map)  # a bad split_map is a config error: report it now
        self.just_inference = just_inference
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.pin_memory, self.drop_last, self.shuffle = pin_memory, drop_last, shuffle
        self.persistent_workers = persistent_workers
        self._id_columns = None if id_columns is None else as_list(id_columns)
        self.seed = seed
        self.dataloader_kwargs = dataloader_kwargs
        self._manifest: Manifest | None = None
        self._datasets: dict[str, ManifestDataset] = {}
        self._arrays: dict[str, np.ndarray] = {}  # column -> values, for per-row loaders

    @property
    def manifest(self) -> Manifest:
        """The manifest, read on first use and kept: stages share one read."""
        if self._manifest is None:
            manifest = read_manifest(self.path, self.split_column, self.split_map,
                                     self.just_inference, self._projection())
            check_columns(self._id_columns or [], list(manifest.frame.columns), "id_columns",
                          manifest.source)
            self._manifest = manifest
        return self._manifest

    def _projection(self) -> list[str] | None:
        """``columns`` plus the id columns and every column a loader says it needs."""
        if self.columns is None:
            return None
        available = manifest_columns(self.path)
        needed = [*self.columns, *(self._id_columns or [])]
        unique = {id(loader): loader for split in self.loaders.values() for loader in split.values()}
        for loader in unique.values():
            required = getattr(loader, "required_columns", None)
            needed += required(available) if callable(required) else []
        return list(dict.fromkeys(needed))

    def setup(self, stage: str | None = None) -> None:
        """Build the stage's datasets; with no stage, every split that has rows.

        An empty val split is not an error: validation is skipped, with a warning.
        """
        splits = [s for s in STAGE_SPLITS.get(stage or "", LOADER_SPLITS)
                  if stage is not None or self._has_rows(s)]
        skip_val = "val" in splits and not self._has_rows("val")
        self._build([s for s in splits if s != "val" or not skip_val])
        if skip_val:
            warnings.warn(f"manifest {self.manifest.source} has no val rows: validation is skipped",
                          UserWarning, stacklevel=2)

    def train_dataloader(self) -> DataLoader:
        """Shuffled (unless ``shuffle`` is false), with ``drop_last`` applied."""
        return self._dataloader("train", shuffle=self.shuffle, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader | list:
        """An empty list when there are no val rows, which makes Lightning skip validation."""
        return self._dataloader("val") if self._has_rows("val") else []

    def test_dataloader(self) -> DataLoader:
        """In manifest order; every row is kept."""
        return self._dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        """Every manifest row, in manifest order."""
        return self._dataloader("predict")

    def frame(self, split: str) -> pd.DataFrame:
        """The split's manifest rows in position order: ``batch["_index"]`` indexes it with iloc."""
        return self.manifest.split_frame(split)

    def id_columns(self) -> list[str]:
        """Columns identifying a row: ``id_columns``, else every non-float column (ids, paths, split)."""
        if self._id_columns is not None:
            return list(self._id_columns)
        frame = self.manifest.frame
        return [c for c in frame.columns if not pd.api.types.is_float_dtype(frame[c].dtype)]

    def identifiers(self, split: str) -> pd.DataFrame:
        """The identifying columns of :meth:`frame`, for joining predictions back."""
        return self.frame(split)[self.id_columns()]

    def __str__(self) -> str:
        """A description that reads nothing (Lightning's default builds every dataloader)."""
        return f"ManifestDatamodule({self.path}, built splits: {sorted(self._datasets)})"

    def _has_rows(self, split: str) -> bool:
        return len(self.manifest.rows.get(split, ())) > 0

    def _dataloader(self, split: str, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        dataset = self.dataset(split)
        generator = None if self.seed is None else torch.Generator().manual_seed(int(self.seed))
        order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        batches = ManifestBatchSampler(order, self.batch_size, drop_last, as_lists=self.num_workers > 0)
        return ManifestDataLoader(dataset, batch_sampler=batches,
                          collate_fn=keep_batch, num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.persistent_workers and self.num_workers > 0,
                          **self.dataloader_kwargs)

    def dataset(self, split: str) -> ManifestDataset:
        """The split's dataset, built on first use (``setup`` builds a stage's at once)."""
        if split not in self._datasets:
            self._build([split])
        return self._datasets[split]

    def _build(self, splits: Sequence[str]) -> None:
        """Build the datasets of ``splits``, running each ``load_frame`` once for all of them.

        Splits share each whole-manifest tensor rather than copying their rows
        out of it: the copies were the largest part of setup's peak
        (figures: bench/README.md, datamodule), and gathering a batch through
        the split's rows costs about the same as from a copy.
        """
        whole: dict[int, torch.Tensor] = {}
        for split in splits:
            if split not in self._datasets:
                self._datasets[split] = self._split_dataset(split, whole)

    def _split_dataset(self, split: str, whole: dict[int, torch.Tensor]) -> ManifestDataset:
        manifest = self.manifest
        if not self._has_rows(split):
            hint = ("just_inference=true gives only test and predict" if self.just_inference
                    else f"mark some rows '{split}' in the split column")
            raise DataError(f"the {split} split of manifest {manifest.source} is empty", hint=hint)
        loaders = self.loaders.get(split)
        if not loaders:
            raise ConfigError(f"no loaders for the {split} split", hint=f"add loaders.{split}")
        rows = torch.from_numpy(manifest.rows[split])
        shuffled = split == "train" and self.shuffle
        sources: dict[str, torch.Tensor | Loader] = {}
        for key, loader in loaders.items():
            if not callable(getattr(loader, "load_frame", None)):
                sources[key] = loader
                continue
            tensor = whole[id(loader)] if id(loader) in whole else self._load_frame(key, loader)
            whole[id(loader)] = sources[key] = _gatherable(tensor, shuffled)
        per_row = {k: v for k, v in sources.items() if not isinstance(v, torch.Tensor)}
        return ManifestDataset(split, rows, sources, self._row_columns(per_row), manifest.frame.index)

    def _load_frame(self, key: str, loader: Any) -> torch.Tensor:
        """The loader's values for every manifest row, as a tensor sharing their memory."""
        frame = self.manifest.frame
        try:
            values = loader.load_frame(frame)
        except SerotinyError:
            raise
        except Exception as err:  # a third-party load_frame: say which loader failed
            raise DataError(f"loader '{key}' failed on manifest {self.manifest.source}: {err}") from err
        with warnings.catch_warnings():
            # A read-only view of the frame's memory (pandas copy-on-write) is fine:
            # batches are gathered into new tensors, never written in place.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.as_tensor(values)
        if tensor.ndim == 0 or len(tensor) != len(frame):
            raise DataError(f"loader '{key}'.load_frame returned shape {tuple(tensor.shape)} "
                            f"for {len(frame)} rows", hint="load_frame must return one item per row")
        return tensor

    def _row_columns(self, loaders: Mapping[str, Loader]) -> dict[str, np.ndarray]:
        """The columns per-row loaders read (all, for a loader that does not say), as numpy."""
        frame = self.manifest.frame
        names: list[str] = []
        for loader in loaders.values():
            required = getattr(loader, "required_columns", None)
            names += required(list(frame.columns)) if callable(required) else list(frame.columns)
        for name in names:
            if name not in self._arrays:
                self._arrays[name] = frame[name].to_numpy()
        return {name: self._arrays[name] for name in dict.fromkeys(names)}
