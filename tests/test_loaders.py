"""The built-in loaders, on real frames, rows and image files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from PIL import Image

from serotiny_core.errors import ConfigError, DataError
from serotiny_plugins.images import LoadImage
from serotiny_plugins.loaders import LoadClass, LoadColumn, LoadColumns


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "cell_id": ["a", "b", "c"],
        "mem_x": [1.0, 2.0, 3.0],
        "mem_y": [4.0, 5.0, 6.0],
        "nuc_x": [7.0, 8.0, 9.0],
        "nuc_volume": [10, 11, 12],
        "label": [0, 2, 1],
    })


@pytest.mark.parametrize("kwargs, expected", [
    ({"columns": ["nuc_x", "mem_x"]}, ["nuc_x", "mem_x"]),
    ({"startswith": "mem_"}, ["mem_x", "mem_y"]),
    ({"endswith": "_x"}, ["mem_x", "nuc_x"]),
    ({"contains": "uc"}, ["nuc_x", "nuc_volume"]),
    ({"regex": r"^(mem|nuc)_[xy]$"}, ["mem_x", "mem_y", "nuc_x"]),
    ({"startswith": "mem", "endswith": "y"}, ["mem_y"]),
    ({"regex": "_[xyv]", "excludes": ["mem_y", "nuc_volume"]}, ["mem_x", "nuc_x"]),
    ({"columns": ["mem_x", "mem_y", "nuc_x"], "startswith": "mem"}, ["mem_x", "mem_y"]),
])
def test_load_columns_selection(frame, kwargs, expected):
    loader = LoadColumns(**kwargs)
    assert loader.required_columns(frame.columns) == expected
    values = loader.load_frame(frame)
    assert values.dtype == np.float32 and values.shape == (3, len(expected))
    np.testing.assert_array_equal(values, frame[expected].to_numpy(np.float32))
    row = loader(frame.iloc[1].to_dict())
    assert row.shape == (len(expected),)
    np.testing.assert_array_equal(row, values[1])


def test_load_columns_row_may_be_a_series(frame):
    np.testing.assert_array_equal(LoadColumns(startswith="mem")(frame.iloc[2]), [3.0, 6.0])


def test_load_columns_dtype(frame):
    assert LoadColumns(columns=["nuc_volume"], dtype="int64").load_frame(frame).dtype == np.int64


def test_load_columns_needs_columns_or_a_filter():
    with pytest.raises(ConfigError, match="columns=.* or a filter"):
        LoadColumns()
    with pytest.raises(ConfigError, match="regex"):
        LoadColumns(regex="(")
    with pytest.raises(ConfigError, match="dtype"):
        LoadColumns(startswith="a", dtype="floaty")


def test_filter_matching_nothing_names_filter_and_columns(frame):
    with pytest.raises(DataError) as caught:
        LoadColumns(startswith="dna_").load_frame(frame)
    assert "startswith='dna_'" in str(caught.value) and "mem_x" in str(caught.value)


def test_missing_explicit_columns_are_named(frame):
    with pytest.raises(DataError, match=r"no column\(s\) \['gone'\]"):
        LoadColumns(columns=["mem_x", "gone"]).load_frame(frame)
    with pytest.raises(DataError, match="gone"):
        LoadColumn("gone").load_frame(frame)


def test_non_numeric_column_names_column_and_value(frame):
    with pytest.raises(DataError) as caught:
        LoadColumns(columns=["mem_x", "cell_id"]).load_frame(frame)
    assert "'cell_id'" in str(caught.value) and "'a'" in str(caught.value)
    with pytest.raises(DataError, match="cell_id.*'b'"):
        LoadColumns(columns=["cell_id"])(frame.iloc[1].to_dict())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_name_column_and_row(frame, bad):
    frame.loc[2, "mem_y"] = bad
    with pytest.raises(DataError, match="'mem_y'.*row 2"):
        LoadColumns(startswith="mem").load_frame(frame)
    with pytest.raises(DataError, match="'mem_y'.*row 2"):
        LoadColumns(startswith="mem")(frame.iloc[2])


def test_load_column_unsqueeze(frame):
    assert LoadColumn("mem_x").load_frame(frame).shape == (3, 1)
    assert LoadColumn("mem_x", unsqueeze=False).load_frame(frame).shape == (3,)
    assert LoadColumn("nuc_volume")(frame.iloc[0].to_dict()).shape == (1,)
    value = LoadColumn("nuc_volume", unsqueeze=False)(frame.iloc[0].to_dict())
    assert value.shape == () and value == 10


def test_load_class_one_hot(frame):
    loader = LoadClass(num_classes=3, y_encoded_label="label")
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)
    np.testing.assert_array_equal(loader.load_frame(frame), expected)
    np.testing.assert_array_equal(loader(frame.iloc[1].to_dict()), expected[1])


def test_load_class_binary(frame):
    frame["label"] = [0, 1, 1]
    loader = LoadClass(num_classes=2, y_encoded_label="label", binary=True)
    values = loader.load_frame(frame)
    assert values.shape == (3, 1) and values.dtype == np.float32
    np.testing.assert_array_equal(values[:, 0], [0, 1, 1])
    np.testing.assert_array_equal(loader({"label": 1}), [1.0])


def test_load_class_rejects_bad_labels(frame):
    with pytest.raises(DataError, match="'label' holds 2 at row 1.*0..1"):
        LoadClass(num_classes=2, y_encoded_label="label").load_frame(frame)
    with pytest.raises(DataError, match="0..1"):
        LoadClass(num_classes=3, y_encoded_label="label", binary=True).load_frame(frame)
    with pytest.raises(DataError, match="holds 1.5"):
        LoadClass(num_classes=3, y_encoded_label="label")({"label": 1.5})
    with pytest.raises(DataError, match="-1"):
        LoadClass(num_classes=3, y_encoded_label="label")({"label": -1})


def _tiff(path, data, **kwargs):
    tifffile.imwrite(path, data, photometric="minisblack", **kwargs)
    return str(path)


def test_load_image_2d_tiff(tmp_path):
    data = np.arange(20, dtype=np.uint16).reshape(4, 5)
    image = LoadImage("path")({"path": _tiff(tmp_path / "a.tif", data)})
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
    assert image.shape == (1, 4, 5)
    np.testing.assert_array_equal(image[0].numpy(), data)


def test_load_image_3d_tiff_is_one_channel_stack(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (3, 4, 5), dtype=np.uint8)
    image = LoadImage("path")({"path": _tiff(tmp_path / "a.tiff", data)})
    assert image.shape == (1, 3, 4, 5)
    np.testing.assert_array_equal(image[0].numpy(), data)


@pytest.mark.parametrize("layout", ["interleaved", "planar"])
def test_load_image_rgb_tiff_is_three_channels(tmp_path, layout):
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    if layout == "planar":
        tifffile.imwrite(path, rgb.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    else:
        tifffile.imwrite(path, rgb, photometric="rgb")
    image = LoadImage("path")({"path": str(path)})
    np.testing.assert_array_equal(image.numpy(), rgb.transpose(2, 0, 1))


def test_load_image_czyx_tiff_stays_and_channels_are_selected(tmp_path):
    data = np.random.default_rng(0).random((3, 2, 4, 5), dtype=np.float32)
    path = _tiff(tmp_path / "a.tif", data, metadata={"axes": "CZYX"})
    assert LoadImage("path")({"path": path}).shape == (3, 2, 4, 5)
    picked = LoadImage("path", select_channels=[2, 0])({"path": path})
    np.testing.assert_array_equal(picked.numpy(), data[[2, 0]])
    with pytest.raises(DataError, match=r"3 channel\(s\).*\[5\]"):
        LoadImage("path", select_channels=[5])({"path": path})


def test_load_image_ome_tiff_axes_are_reordered(tmp_path):
    data = np.random.default_rng(0).random((2, 3, 4, 5), dtype=np.float32)  # Z, C, Y, X
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "ZCYX"})
    image = LoadImage("path")({"path": str(path)})
    np.testing.assert_array_equal(image.numpy(), data.transpose(1, 0, 2, 3))


def test_load_image_png_rgb_and_grayscale(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    image = LoadImage("path")({"path": str(tmp_path / "rgb.png")})
    assert image.shape == (3, 4, 5)
    np.testing.assert_array_equal(image.numpy(), rgb.transpose(2, 0, 1))
    gray = LoadImage("path")({"path": str(tmp_path / "gray.png")})
    np.testing.assert_array_equal(gray.numpy(), rgb[None, ..., 0])


def test_load_image_jpeg(tmp_path):
    Image.fromarray(np.zeros((4, 5, 3), dtype=np.uint8)).save(tmp_path / "a.jpg")
    assert LoadImage("path")({"path": str(tmp_path / "a.jpg")}).shape == (3, 4, 5)


def test_load_image_npy_transform_and_dtype(tmp_path):
    data = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.save(tmp_path / "a.npy", data)
    loader = LoadImage("path", dtype="float64", transform=lambda t: t * 2)
    image = loader(pd.Series({"path": str(tmp_path / "a.npy")}))
    assert image.dtype == torch.float64 and image.shape == (1, 3, 4)
    np.testing.assert_array_equal(image[0].numpy(), data * 2)


def test_load_image_reader_overrides_extension(tmp_path):
    seen = []
    loader = LoadImage("path", reader=lambda path: seen.append(path) or np.ones((2, 3, 4)))
    assert loader({"path": "any/thing.zarr"}).shape == (1, 2, 3, 4)
    assert seen == ["any/thing.zarr"]


def test_load_image_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="nope.tif.*does not exist"):
        LoadImage("path")({"path": str(tmp_path / "nope.tif")})
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match="cannot read image .*bad.tif"):
        LoadImage("path")(pd.Series({"path": str(tmp_path / "bad.tif")}, name=7))
    (tmp_path / "a.xyz").write_bytes(b"")
    with pytest.raises(DataError, match="unknown extension"):
        LoadImage("path")({"path": str(tmp_path / "a.xyz")})
    with pytest.raises(DataError, match="not a path"):
        LoadImage("path")({"path": float("nan")})


def test_load_image_ome_zarr_and_ome_tiff_written_by_bioio(tmp_path):
    """With serotiny[bioio]: OME-Zarr through bioio's readers; OME-TIFF through the TIFF fast path."""
    pytest.importorskip("bioio_ome_zarr")
    from bioio_ome_tiff.writers import OmeTiffWriter
    from bioio_ome_zarr.writers import OMEZarrWriter

    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)  # C, Z, Y, X
    writer = OMEZarrWriter(str(tmp_path / "a.ome.zarr"), level_shapes=[data.shape], dtype=data.dtype,
                           axes_names=["c", "z", "y", "x"],
                           axes_types=["channel", "space", "space", "space"])
    writer.write_full_volume(data)
    OmeTiffWriter.save(data, str(tmp_path / "a.ome.tiff"), dim_order="CZYX")
    flat = data[:, :1]
    OMEZarrWriter(str(tmp_path / "flat.ome.zarr"), level_shapes=[flat.shape], dtype=flat.dtype,
                  axes_names=["c", "z", "y", "x"],
                  axes_types=["channel", "space", "space", "space"]).write_full_volume(flat)
    for name in ("a.ome.zarr", "a.ome.tiff"):
        image = LoadImage("path")({"path": str(tmp_path / name)})
        assert image.shape == (2, 3, 4, 5), name
        np.testing.assert_array_equal(image.numpy(), data)
    assert LoadImage("path", select_channels=[1])({"path": str(tmp_path / "flat.ome.zarr")}).shape == (1, 4, 5)
