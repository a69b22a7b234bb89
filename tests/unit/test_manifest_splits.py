"""Manifest split names canonicalised, renamed with ``split_map``, or refused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from serotiny_core.errors import ConfigError, DataError
from serotiny_plugins.manifest import read_manifest, split_namer


def test_split_aliases_any_case_and_spacing() -> None:
    name = split_namer(None)
    assert [name(v) for v in ("Training", " VALID ", "validation", "testing", "holdout")] == [
        "train", "val", "val", "test", None]


def test_split_map_renames_and_refuses_non_splits() -> None:
    assert split_namer({"holdout": "test"})("Holdout") == "test"
    with pytest.raises(ConfigError, match="split_map renames 'holdout' to 'other', which is not a split"):
        split_namer({"holdout": "other"})


def test_rows_per_split_and_unknown_values(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    pd.DataFrame({"x": range(6), "split": ["train", "Training", "val", "test", "train", "valid"]}).to_csv(path, index=False)
    manifest = read_manifest(path, None, None, False, None)
    assert {k: list(v) for k, v in manifest.rows.items()} == {
        "train": [0, 1, 4], "val": [2, 5], "test": [3], "predict": [0, 1, 2, 3, 4, 5]}
    pd.DataFrame({"x": [1, 2], "split": ["train", "dev"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="unknown split values") as raised:
        read_manifest(path, None, None, False, None)
    assert "split_map={'dev': 'test'}" in raised.value.hint


def test_folder_file_names_are_the_splits(tmp_path: Path) -> None:
    for stem, rows in (("training", 3), ("valid", 2)):
        pd.DataFrame({"x": range(rows)}).to_csv(tmp_path / f"{stem}.csv", index=False)
    manifest = read_manifest(tmp_path, None, None, False, None)
    assert [len(manifest.rows[s]) for s in ("train", "val", "test")] == [3, 2, 0]
    (tmp_path / "extra.csv").write_text("x\n1\n")
    with pytest.raises(DataError, match=r"file names \['extra.csv'\] are not splits"):
        read_manifest(tmp_path, None, None, False, None)
