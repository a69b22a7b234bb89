"""Property: whatever broken config or manifest a user writes, the CLI answers with
exit 0, 1 or 2 and, on failure, one ``error:`` line — never a traceback.

Runs the CLI in this process (the same code the console script runs) so that
hypothesis can try many inputs in a bounded time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import init_project, run_cli
from projects import manifest_frame

# trainer.max_epochs is left out: -1 means "train forever" to Lightning.
KEYS = ["model.x_dim", "model.latent_dim", "model.hidden_layers", "model.beta", "model.x_label",
        "model._target_", "model.optimizer.lr", "model.optimizer._target_", "data.batch_size",
        "data.split_column", "data.loaders.x.startswith", "data.loaders.x._target_", "data._target_",
        "trainer.max_steps", "trainer.accelerator", "+model.bogus", "+data.bogus", "~data.path",
        "~model.x_dim", "trainer.callbacks", "seed"]
VALUES = st.one_of(
    st.integers(min_value=-3, max_value=40).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.sampled_from(["null", "???", "[]", "[0]", "[4,-1]", "{}", "TabularVAE", "os.path.join",
                     "feature_", "nope_", "split", "x", "cpu", "gpu", "'a b'", "[1,2", "${nope}",
                     "LoadColumn", "torch.optim.SGD"]),
    st.text(alphabet="abc_.-=:[]{}$ ", min_size=0, max_size=8),
)
OVERRIDE = st.builds(lambda key, value: key if key.startswith("~") else f"{key}={value}",
                     st.sampled_from(KEYS), VALUES)


def broken_manifest(draw_cols: list[str], rows: int, corruption: str, rng: np.random.Generator) -> pd.DataFrame:
    frame = manifest_frame(rows, 16, seed=int(rng.integers(1000)), splits=("train", "val", "test"),
                           id_column="sample_id")
    if corruption == "nan" and rows:
        frame.iloc[rng.integers(rows), 3] = np.nan
    elif corruption == "text" and rows:
        frame = frame.astype({"feature_5": object})
        frame.iloc[rng.integers(rows), 7] = "oops"
    elif corruption == "split" and rows:
        frame.iloc[rng.integers(rows), 1] = "holdout"
    return frame.drop(columns=[c for c in draw_cols if c in frame.columns])


def check(code: int, text: str) -> None:
    assert code in (0, 1, 2), text
    assert "Traceback" not in text, text
    if code != 0:
        assert any(line.startswith("error:") for line in text.splitlines()), text


@pytest.fixture(scope="module")
def fuzz_project(tmp_path_factory) -> Path:
    return init_project(tmp_path_factory.mktemp("fuzz"))


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(overrides=st.lists(OVERRIDE, min_size=1, max_size=3))
def test_broken_configs_never_traceback(fuzz_project, overrides):
    result = run_cli("train", "mlflow.tracking_uri=null", "trainer.max_epochs=1",
                     "+trainer.enable_progress_bar=false", *overrides, cwd=fuzz_project)
    check(result.code, result.text)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(dropped=st.lists(st.sampled_from(["split", "feature_0", "sample_id"]), max_size=2),
       rows=st.integers(min_value=0, max_value=40),
       corruption=st.sampled_from(["none", "nan", "text", "split"]),
       seed=st.integers(min_value=0, max_value=2**16))
def test_broken_manifests_never_traceback(fuzz_project, dropped, rows, corruption, seed):
    path = fuzz_project / "data" / "fuzzed.csv"
    broken_manifest(dropped, rows, corruption, np.random.default_rng(seed)).to_csv(path, index=False)
    result = run_cli("train", f"data.path={path}", "mlflow.tracking_uri=null", "trainer.max_epochs=1",
                     "+trainer.enable_progress_bar=false", cwd=fuzz_project)
    check(result.code, result.text)
