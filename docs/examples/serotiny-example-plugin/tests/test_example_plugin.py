"""Tests of the example plugin, as its author would write them.

The first three need only the package; the last runs serotiny itself and
needs the plugin installed (``pip install -e .``), as a user would have it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from serotiny_core import Component, import_object
from serotiny_example import serotiny_plugin
from serotiny_example.loaders import LoadScaledColumns
from serotiny_example.models import LinearAutoencoder

# The serotiny of the Python running the tests (a virtual environment's), else the one on PATH.
BESIDE = Path(sys.executable).parent / "serotiny"
SEROTINY = str(BESIDE) if BESIDE.is_file() else shutil.which("serotiny") or "serotiny"


def test_every_declared_component_imports():
    for item in serotiny_plugin.serotiny_components():
        component = Component.coerce(item)
        assert callable(import_object(component.target)), component


def test_loader_rows_and_frame_agree():
    frame = pd.DataFrame({"id": ["a", "b"], "feature_0": [1.0, 2.0], "feature_1": [3.0, 4.0]})
    loader = LoadScaledColumns(prefix="feature_", scale=0.5)
    whole = loader.load_frame(frame)
    assert whole.shape == (2, 2)
    for position, (_, row) in enumerate(frame.iterrows()):
        np.testing.assert_array_equal(loader(row.to_dict()), whole[position])


def test_model_reconstructs_and_predicts():
    model = LinearAutoencoder(x_dim=4, latent_dim=2)
    batch = {"x": torch.randn(8, 4), "_index": torch.arange(8)}
    assert model(batch["x"]).shape == (8, 4)
    assert model.predict_step(batch, 0)["z"].shape == (8, 2)


def test_serotiny_finds_the_plugin_and_its_configs(tmp_path):
    listed = subprocess.run([SEROTINY, "list-components", "--json"], capture_output=True,
                            text=True, check=True, cwd=tmp_path)
    names = {c["name"]: c for c in json.loads(listed.stdout)["components"]}
    assert names["LinearAutoencoder"]["distribution"] == "serotiny-example-plugin"
    subprocess.run([SEROTINY, "init", "demo"], check=True, cwd=tmp_path, capture_output=True)
    shown = subprocess.run([SEROTINY, "train", "model=linear_ae", "data=scaled_features",
                            "--cfg", "job"], capture_output=True, text=True, check=True,
                           cwd=tmp_path / "demo")
    assert "_target_: LinearAutoencoder" in shown.stdout
    assert "_target_: LoadScaledColumns" in shown.stdout
