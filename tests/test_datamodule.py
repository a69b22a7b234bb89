"""ManifestDatamodule on real CSV, parquet and folder manifests."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import tifffile
import torch
from omegaconf import OmegaConf

from serotiny_core.batch import INDEX_KEY
from serotiny_core.errors import ConfigError, DataError
from serotiny_plugins.datamodule import ManifestDatamodule
from serotiny_plugins.images import LoadImage
from serotiny_plugins.loaders import LoadClass, LoadColumn, LoadColumns

SPLIT_VALUES = ["Training", "train", "VALID", "validation", "test", "Testing"]


def _frame(rows: int = 12, splits: list[str] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    values = splits or [SPLIT_VALUES[i % len(SPLIT_VALUES)] for i in range(rows)]
    return pd.DataFrame({
        "cell_id": [f"c{i}" for i in range(len(values))],
        "plate": np.arange(len(values)) % 3,
        "f0": rng.random(len(values)),
        "f1": rng.random(len(values)),
        "f2": rng.random(len(values)),
        "label": np.arange(len(values)) % 2,
        "split": values,
    })


def _features() -> dict:
    return {"x": LoadColumns(startswith="f"), "y": LoadClass(num_classes=2, y_encoded_label="label")}


def _csv(tmp_path, frame: pd.DataFrame | None = None, name: str = "manifest.csv") -> str:
    path = tmp_path / name
    (_frame() if frame is None else frame).to_csv(path, index=False)
    return str(path)


def _batches(loader) -> list[dict]:
    return list(loader)


def test_csv_splits_are_canonicalised_and_batches_are_dicts(tmp_path):
    dm = ManifestDatamodule(_csv(tmp_path), _features(), batch_size=3, seed=1)
    dm.setup("fit")
    assert [len(dm.frame(s)) for s in ("train", "val", "test", "predict")] == [4, 4, 4, 12]
    assert set(dm.frame("val")["split"]) == {"VALID", "validation"}
    batches = _batches(dm.train_dataloader())
    assert len(batches) == 2
    batch = batches[0]
    assert set(batch) == {"x", "y", INDEX_KEY}
    assert batch["x"].shape == (3, 3) and batch["x"].dtype == torch.float32
    assert batch["y"].shape == (3, 2)
    assert batch[INDEX_KEY].dtype == torch.long
    train = dm.frame("train")
    rows = train.iloc[batch[INDEX_KEY].numpy()]
    np.testing.assert_allclose(batch["x"].numpy(), rows[["f0", "f1", "f2"]].to_numpy(), rtol=1e-6)
    seen = torch.cat([b[INDEX_KEY] for b in batches]).sort().values
    assert seen.tolist() == [0, 1, 2, 3]
    # Whole-manifest tensors, row-contiguous for the shuffled split: a batch is one index_select.
    assert all(t.is_contiguous() for t in dm.dataset("train").sources.values())


def test_only_train_is_shuffled_and_seed_repeats_the_order(tmp_path):
    path = _csv(tmp_path, _frame(60, ["train"] * 50 + ["val"] * 10))

    def order(seed, split="train"):
        dm = ManifestDatamodule(path, _features(), batch_size=7, seed=seed)
        loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
        return torch.cat([b[INDEX_KEY] for b in loader]).tolist()

    assert order(3) == order(3) != list(range(50))
    assert order(3, "val") == list(range(10))
    dm = ManifestDatamodule(path, _features(), batch_size=7, shuffle=False, drop_last=True)
    assert torch.cat([b[INDEX_KEY] for b in dm.train_dataloader()]).tolist() == list(range(49))


def test_parquet_columns_projection_reads_only_listed_columns(tmp_path):
    path = tmp_path / "manifest.parquet"
    _frame().to_parquet(path)
    dm = ManifestDatamodule(str(path), {"x": LoadColumn("f1")}, columns=["cell_id"])
    dm.setup("fit")
    assert list(dm.frame("train").columns) == ["cell_id", "f1", "split"]
    assert next(iter(dm.train_dataloader()))["x"].shape == (4, 1)
    with pytest.raises(DataError, match=r"columns: .*no column\(s\) \['nope'\]"):
        ManifestDatamodule(str(path), {"x": LoadColumn("f1")}, columns=["nope"]).setup("fit")


def test_parquet_float_columns_are_shared_not_copied(tmp_path):
    path = tmp_path / "manifest.parquet"
    frame = _frame().astype({"f1": "float32"})
    frame.index = pd.Index([f"r{i}" for i in range(len(frame))], name="row")
    frame.to_parquet(path)
    dm = ManifestDatamodule(str(path), {"x": LoadColumns(regex="^f[02]$", dtype="float64")}, batch_size=4)
    dm.setup("fit")
    read = dm.frame("predict")
    expected = pd.read_parquet(path).reset_index()
    pd.testing.assert_frame_equal(read, expected)  # same columns, order and dtypes as pandas reads
    features = dm.dataset("train").sources["x"]
    assert features is dm.dataset("val").sources["x"] and features.is_contiguous()
    assert np.shares_memory(features.numpy(), read["f2"].to_numpy())  # f1 (float32) is not between
    batch = next(iter(dm.train_dataloader()))
    rows = dm.frame("train").iloc[batch[INDEX_KEY].numpy()]
    np.testing.assert_array_equal(batch["x"].numpy(), rows[["f0", "f2"]].to_numpy())


def test_parquet_nan_is_named_like_csv(tmp_path):
    path = tmp_path / "manifest.parquet"
    frame = _frame()
    frame.loc[7, "f1"] = np.nan
    frame.to_parquet(path)
    with pytest.raises(DataError, match="'f1' holds nan at row 7"):
        ManifestDatamodule(str(path), _features()).setup("fit")


def test_csv_columns_projection(tmp_path):
    dm = ManifestDatamodule(_csv(tmp_path), {"x": LoadColumns(regex="^f[01]$")}, columns=[],
                            id_columns=["plate"])
    assert list(dm.frame("predict").columns) == ["plate", "f0", "f1", "split"]
    assert list(dm.identifiers("test").columns) == ["plate"]


def test_folder_of_split_files(tmp_path):
    folder = tmp_path / "manifest"
    folder.mkdir()
    frame = _frame().drop(columns="split")
    frame.iloc[:5].to_csv(folder / "Training.csv", index=False)
    frame.iloc[5:8].to_parquet(folder / "valid.parquet")
    frame.iloc[8:].to_csv(folder / "holdout.csv", index=False)
    (folder / "notes.txt").write_text("ignored")
    dm = ManifestDatamodule(str(folder), _features(), split_map={"holdout": "test"}, batch_size=4)
    dm.setup()
    assert [len(dm.frame(s)) for s in ("train", "val", "test", "predict")] == [5, 3, 4, 12]
    assert dm.frame("test")["cell_id"].tolist() == ["c8", "c9", "c10", "c11"]
    assert set(dm.frame("val")["split"]) == {"val"}
    assert dm.id_columns() == ["cell_id", "plate", "label", "split"]
    predicted = torch.cat([b[INDEX_KEY] for b in dm.predict_dataloader()])
    assert dm.identifiers("predict").iloc[predicted.numpy()]["cell_id"].tolist() == \
        [f"c{i}" for i in range(12)]


def test_folder_with_unknown_file_names(tmp_path):
    folder = tmp_path / "manifest"
    folder.mkdir()
    _frame().to_csv(folder / "train.csv", index=False)
    _frame().to_csv(folder / "extra.csv", index=False)
    with pytest.raises(DataError, match=r"\['extra.csv'\] are not splits"):
        ManifestDatamodule(str(folder), _features()).setup("fit")


def test_split_map_and_unknown_split_values(tmp_path):
    frame = _frame(6, ["train", "train", "holdout", "Holdout", "val", "other"])
    path = _csv(tmp_path, frame)
    with pytest.raises(DataError) as caught:
        ManifestDatamodule(path, _features(), split_map={"holdout": "test"}).setup("fit")
    message = str(caught.value)
    assert "'other'" in message and "split_map" in message and "training" in message
    frame.loc[5, "split"] = "validation"
    dm = ManifestDatamodule(_csv(tmp_path, frame), _features(), split_map={"holdout": "test"})
    dm.setup("test")
    assert dm.frame("test")["cell_id"].tolist() == ["c2", "c3"]
    with pytest.raises(ConfigError, match="not a split"):
        ManifestDatamodule(path, _features(), split_map={"holdout": "unseen"})


def test_custom_split_column_and_just_inference(tmp_path):
    frame = _frame().rename(columns={"split": "subset"})
    path = _csv(tmp_path, frame)
    dm = ManifestDatamodule(path, _features(), split_column="subset")
    dm.setup("fit")
    assert len(dm.frame("train")) == 4
    inference = ManifestDatamodule(_csv(tmp_path, frame.drop(columns="subset"), "x.csv"), _features(),
                                   just_inference=True)
    inference.setup("predict")
    assert len(inference.frame("predict")) == len(inference.frame("test")) == 12
    with pytest.raises(DataError, match="train split .* is empty.*just_inference"):
        inference.setup("fit")


def test_per_split_loaders_reuse_and_fallback(tmp_path):
    calls = []

    def marker(row):
        calls.append(row["cell_id"])
        return np.array([1.0])

    loaders = {"train": {"x": LoadColumns(startswith="f"), "aug": marker},
               "validation": {"x": LoadColumn("f0")}, "test": "val"}
    dm = ManifestDatamodule(_csv(tmp_path), OmegaConf.create(loaders, flags={"allow_objects": True}),
                            batch_size=100)
    dm.setup()
    assert set(next(iter(dm.train_dataloader()))) == {"x", "aug", INDEX_KEY}
    assert len(calls) == 4
    for split in ("val", "test", "predict"):  # test reuses val; predict borrows test's
        batch = next(iter(getattr(dm, f"{split}_dataloader")()))
        assert set(batch) == {"x", INDEX_KEY} and batch["x"].shape[1] == 1


def test_bad_loader_specs(tmp_path):
    with pytest.raises(ConfigError, match="loaders.val reuses 'val'"):
        ManifestDatamodule(_csv(tmp_path), {"train": _features(), "val": "val"})
    with pytest.raises(ConfigError, match="loaders.x is a dict"):
        ManifestDatamodule(_csv(tmp_path), {"x": {"_target_": "LoadColumns"}, "y": LoadColumn("f0")})
    with pytest.raises(ConfigError, match="empty"):
        ManifestDatamodule(_csv(tmp_path), {})


class Brightness:
    """A third-party loader: only ``__call__``, no ``load_frame`` or ``required_columns``."""

    def __call__(self, row):
        return np.array([float(row["plate"]) + row["f0"]])


def test_row_only_and_image_loaders(tmp_path):
    frame = _frame(6, ["train"] * 4 + ["val"] * 2)
    paths = []
    for i in range(len(frame)):
        paths.append(str(tmp_path / f"im{i}.tif"))
        tifffile.imwrite(paths[-1], np.full((2, 4, 5), i, dtype=np.uint16), photometric="minisblack")
    frame["path"] = paths
    loaders = {"image": LoadImage("path"), "b": Brightness(), "plate": lambda row: row["plate"]}
    dm = ManifestDatamodule(_csv(tmp_path, frame), loaders, batch_size=3, shuffle=False)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 1, 2, 4, 5) and batch["image"].dtype == torch.float32
    assert batch["image"][:, 0, 0, 0, 0].tolist() == [0, 1, 2]
    np.testing.assert_allclose(batch["b"][:, 0].numpy(), (frame.plate + frame.f0)[:3], rtol=1e-6)
    assert batch["plate"].tolist() == [0, 1, 2]
    item = dm.dataset("val")[1]
    assert item["image"].shape == (1, 2, 4, 5) and int(item[INDEX_KEY]) == 1


def test_batches_from_workers_carry_the_same_index_tensor(tmp_path):
    frame = _frame(12, ["train"] * 12)
    frame["path"] = [str(tmp_path / f"img{i}.npy") for i in range(12)]
    for i, path in enumerate(frame["path"]):
        np.save(path, np.full((2, 2), i, dtype=np.float32))
    loaders = {"image": LoadImage("path"), "x": LoadColumns(startswith="f")}
    dm = ManifestDatamodule(_csv(tmp_path, frame), loaders, batch_size=5, num_workers=2, seed=3)
    batches = list(dm.train_dataloader())
    assert [len(b[INDEX_KEY]) for b in batches] == [5, 5, 2]
    for batch in batches:
        assert isinstance(batch[INDEX_KEY], torch.Tensor) and batch[INDEX_KEY].dtype == torch.long
        assert batch["image"][:, 0, 0, 0].long().tolist() == batch[INDEX_KEY].tolist()
    assert sorted(torch.cat([b[INDEX_KEY] for b in batches]).tolist()) == list(range(12))


def test_worker_crash_names_the_row(tmp_path):
    frame = _frame(6, ["train"] * 6)
    frame["path"] = [str(tmp_path / f"missing{i}.tif") for i in range(6)]
    dm = ManifestDatamodule(_csv(tmp_path, frame), {"image": LoadImage("path")}, batch_size=2,
                            shuffle=False, num_workers=1, prefetch_factor=1)
    batches = iter(dm.train_dataloader())
    with pytest.raises(DataError, match=r"loader 'image' failed on row 0 of the train split.*missing0.tif"):
        next(batches)
    # Left to the garbage collector, torch waits 5 s for a worker whose error is still
    # referenced; stopping it here keeps the suite fast.
    batches._shutdown_workers()


def test_images_with_different_shapes_in_a_batch(tmp_path):
    frame = _frame(2, ["train"] * 2)
    frame["path"] = [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    np.save(frame.path[0], np.zeros((4, 4)))
    np.save(frame.path[1], np.zeros((5, 4)))
    dm = ManifestDatamodule(_csv(tmp_path, frame), {"image": LoadImage("path")}, batch_size=2)
    with pytest.raises(DataError, match="different shapes"):
        next(iter(dm.train_dataloader()))


def test_identifiers_default_to_non_float_columns(tmp_path):
    dm = ManifestDatamodule(_csv(tmp_path), _features())
    assert dm.id_columns() == ["cell_id", "plate", "label", "split"]
    assert dm.identifiers("val")["cell_id"].tolist() == ["c2", "c3", "c8", "c9"]
    with pytest.raises(DataError, match="id_columns.*'nope'"):
        ManifestDatamodule(_csv(tmp_path), _features(), id_columns=["nope"]).frame("train")


def test_empty_val_warns_and_is_skipped(tmp_path):
    dm = ManifestDatamodule(_csv(tmp_path, _frame(4, ["train", "train", "test", "test"])), _features())
    with pytest.warns(UserWarning, match="no val rows"):
        dm.setup("fit")
    assert dm.val_dataloader() == []


def test_empty_train_is_an_error(tmp_path):
    dm = ManifestDatamodule(_csv(tmp_path, _frame(4, ["val", "val", "test", "test"])), _features())
    with pytest.raises(DataError, match="train split .* is empty"):
        dm.setup("fit")


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, "does not exist"),
    ("manifest.txt", "a,b\n1,2\n", "not a CSV or parquet"),
    ("empty.csv", "", "is empty"),
    ("header.csv", "a,split\n", "has no rows"),
    ("broken.parquet", "not parquet", "cannot read manifest"),
])
def test_unusable_manifest_files(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        ManifestDatamodule(str(tmp_path / name), _features()).setup("fit")


def test_missing_split_column_names_available_columns(tmp_path):
    path = _csv(tmp_path, _frame().drop(columns="split"))
    with pytest.raises(DataError) as caught:
        ManifestDatamodule(path, _features()).setup("fit")
    assert "no split column 'split'" in str(caught.value) and "cell_id" in str(caught.value)
    assert "split_column" in str(caught.value)


def test_bad_feature_values_fail_at_setup(tmp_path):
    frame = _frame()
    frame.loc[7, "f1"] = np.nan
    with pytest.raises(DataError, match="'f1' holds nan at row 7"):
        ManifestDatamodule(_csv(tmp_path, frame), _features()).setup("fit")
    with pytest.raises(DataError, match="'cell_id' is not numeric.*'c0'"):
        ManifestDatamodule(_csv(tmp_path), {"x": LoadColumns(contains="_")}).setup("fit")
    with pytest.raises(DataError, match="matches no column"):
        ManifestDatamodule(_csv(tmp_path), {"x": LoadColumns(startswith="z")}).setup("fit")


class Regressor(pl.LightningModule):
    """A tiny model: enough to drive the datamodule through Lightning."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 2)
        self.validated = 0

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.mse_loss(self.layer(batch["x"]), batch["y"])

    def validation_step(self, batch, batch_idx):
        self.validated += len(batch["x"])

    def predict_step(self, batch, batch_idx):
        return {"y": self.layer(batch["x"]), INDEX_KEY: batch[INDEX_KEY]}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer() -> pl.Trainer:
    return pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)


def test_lightning_fit_and_predict(tmp_path):
    dm = ManifestDatamodule(_csv(tmp_path), _features(), batch_size=3)
    model = Regressor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on num_workers
        trainer = _trainer()
        trainer.fit(model, datamodule=dm)
        predictions = trainer.predict(model, datamodule=dm)
    assert model.validated == 4
    order = torch.cat([p[INDEX_KEY] for p in predictions])
    assert order.tolist() == list(range(12))
    assert torch.cat([p["y"] for p in predictions]).shape == (12, 2)


def test_lightning_skips_empty_validation(tmp_path):
    dm = ManifestDatamodule(_csv(tmp_path, _frame(6, ["train"] * 6)), _features(), batch_size=3)
    model = Regressor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer().fit(model, datamodule=dm)
    assert any("no val rows" in str(w.message) for w in caught)
    assert model.validated == 0
