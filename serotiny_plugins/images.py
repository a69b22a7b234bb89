"""``LoadImage``: an image file named in a manifest column, as a channels-first tensor.

Models see one layout whatever the file: (C, Y, X) for 2D and (C, Z, Y, X)
for 3D. TIFF (OME-TIFF and ImageJ included), .npy and common 2D formats are
read here directly; with the ``serotiny[bioio]`` extra, any other format a
bioio reader plugin reads (OME-Zarr, CZI, ND2, LIF...) is read through bioio. Axis labels are trusted only where the file states them (OME-TIFF,
ImageJ, or TIFFs written with ``axes``, and RGB, interleaved or planar); otherwise a 2D
array is one channel and a 3D array one channel of a Z stack, because a plain
3-page TIFF is far more often a stack than an RGB image.

There is no ``load_frame``: images are read per item, in DataLoader workers,
so a dataset never has to fit in memory.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from serotiny_core import DataError
from serotiny_plugins.loaders import numpy_dtype, require_columns, row_label

_TIFF = (".tif", ".tiff")
_PILLOW = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_ORDER = "CZYX"


class LoadImage:
    """Read the image whose path is in ``row[column]``.

    ``select_channels`` picks channels (after reordering); ``transform`` is
    applied to the resulting tensor; ``reader`` (path -> ndarray) replaces
    the reader chosen by file extension.
    """

    def __init__(self, column: str, dtype: str = "float32", select_channels: Sequence[int] | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 reader: Callable[[str], np.ndarray] | None = None) -> None:
        self.column = str(column)
        self.dtype = numpy_dtype(dtype)
        self.select_channels = None if select_channels is None else [int(c) for c in select_channels]
        self.transform = transform
        self.reader = reader

    def required_columns(self, frame_columns: Iterable[str]) -> list[str]:
        """Just the path column, after checking it exists."""
        return require_columns([self.column], frame_columns, f"LoadImage('{self.column}')")

    def __call__(self, row: Mapping[str, Any]) -> torch.Tensor:
        """The image as a ``dtype`` tensor, channels first."""
        path = row[self.column]
        if not isinstance(path, (str, Path)):
            raise DataError(f"column '{self.column}' holds {path!r} at {row_label(row)}, not a path")
        image = self._read(str(path), row)
        if self.select_channels is not None:
            image = self._channels(image, path)
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=self.dtype))
        return self.transform(tensor) if self.transform is not None else tensor

    def _read(self, path: str, row: Mapping[str, Any]) -> np.ndarray:
        try:
            if self.reader is not None:
                return channels_first(np.asarray(self.reader(path)), None)
            return channels_first(*_read_by_extension(path))
        except DataError:
            raise
        except FileNotFoundError:  # asked of the reader, not checked before: a stat per image
            raise DataError(f"image {path} (column '{self.column}', {row_label(row)}) does not exist") from None
        except Exception as err:  # each image library raises its own types for a bad file
            raise DataError(f"cannot read image {path} (column '{self.column}', "
                            f"{row_label(row)}): {err}") from err

    def _channels(self, image: np.ndarray, path: str) -> np.ndarray:
        wrong = [c for c in self.select_channels if not -len(image) <= c < len(image)]
        if wrong:
            raise DataError(f"image {path} has {len(image)} channel(s); select_channels "
                            f"{self.select_channels} asks for {wrong}")
        return image[self.select_channels]


def _read_by_extension(path: str) -> tuple[np.ndarray, str | None]:
    """The pixels and, where the format states them, their axis labels."""
    suffix = os.path.splitext(path)[1].lower()  # not Path(): ~10 us of an image's ~300 here
    if suffix in _TIFF:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) == 1 and not (tif.is_ome or tif.is_imagej):
                page = tif.pages[0]  # its own axes say all; ~20% faster than building a series
                return page.asarray(), page.axes
            series = tif.series[0]
            return series.asarray(), series.axes
    if suffix == ".npy":
        return np.load(path, allow_pickle=False), None
    if suffix in _PILLOW:
        from PIL import Image

        with Image.open(path) as image:
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            pixels = np.asarray(image)
        return pixels, "YXS" if pixels.ndim == 3 else "YX"
    if _bioio_installed():
        return _read_with_bioio(path, suffix)
    raise DataError(f"image {path}: unknown extension '{suffix}'",
                    hint=f"use TIFF, .npy or {', '.join(_PILLOW)}, install serotiny[bioio] for "
                         "OME-Zarr, CZI, ND2 and the other formats of bioio's readers, or pass reader=")


@functools.cache
def _bioio_installed() -> bool:
    return importlib.util.find_spec("bioio") is not None


def _read_with_bioio(path: str, suffix: str) -> tuple[np.ndarray, str]:
    """What a bioio reader plugin reads, in bioio's axes (``TCZYX``, ``S`` for RGB samples).

    A single Z plane is dropped, so a 2D image is (C, Y, X) as from a TIFF;
    RGB samples become the channels when there is one channel.
    """
    from bioio import BioImage
    from bioio_base.exceptions import UnsupportedFileFormatError

    try:
        image = BioImage(path)
    except UnsupportedFileFormatError:
        raise DataError(f"image {path}: unknown extension '{suffix}'",
                        hint="install the bioio reader plugin for this format (bioio-czi, "
                             "bioio-nd2, ...), or pass reader=") from None
    pixels, axes = np.asarray(image.data), image.dims.order
    for axis in ("Z", "C") if "S" in axes else ("Z",):
        if axis in axes and pixels.shape[axes.index(axis)] == 1:
            pixels, axes = pixels.squeeze(axis=axes.index(axis)), axes.replace(axis, "")
    return pixels, axes


def channels_first(pixels: np.ndarray, axes: str | None) -> np.ndarray:
    """Reorder to (C, Y, X) or (C, Z, Y, X); ``axes`` as tifffile labels them, if known."""
    if axes is not None and {"C", "Z", "S"} & set(axes):  # S: RGB samples, interleaved or planar
        return _by_axes(pixels, axes)
    if pixels.ndim in (2, 3):
        return pixels[None]
    if pixels.ndim == 4:
        return pixels
    raise DataError(f"image of shape {pixels.shape} is not YX, ZYX or CZYX",
                    hint="pass a reader= that returns one of those")


def _by_axes(pixels: np.ndarray, axes: str) -> np.ndarray:
    """Drop singleton axes other than CZYX (time, ...), then transpose to C(Z)YX."""
    if "C" not in axes:
        axes = axes.replace("S", "C")
    extra = tuple(i for i, a in enumerate(axes) if a not in _ORDER)
    if any(pixels.shape[i] > 1 for i in extra):
        raise DataError(f"image with axes {axes} and shape {pixels.shape} has axes other than "
                        f"{_ORDER} longer than 1", hint="pass a reader= that selects one")
    pixels = pixels.squeeze(axis=extra)
    axes = "".join(a for a in axes if a in _ORDER)
    if "C" not in axes:
        pixels, axes = pixels[None], "C" + axes
    return np.transpose(pixels, [axes.index(a) for a in _ORDER if a in axes])
