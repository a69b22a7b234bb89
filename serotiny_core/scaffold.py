"""``serotiny init NAME``: write a project that trains at once, offline.

The layout is the serotiny cookiecutter's (a ``.serotiny`` marker, the
package with ``config/`` groups and ``train/test/predict.yaml``) plus a
``pyproject.toml`` with ``[tool.serotiny]`` and the project's own
``serotiny.plugins`` entry point, and a small synthetic manifest.
"""

from __future__ import annotations

import keyword
import re
import shlex
from pathlib import Path

from serotiny_core.errors import ConfigError

TEMPLATE = Path(__file__).parent / "project_template"
N_ROWS, N_FEATURES, N_FACTORS = 600, 16, 2


def package_name(name: str) -> str:
    """``My Project`` -> ``my_project``: a valid, importable package name."""
    package = re.sub(r"\W+", "_", name.strip().lower()).strip("_")
    if not package or package[0].isdigit() or keyword.iskeyword(package):
        raise ConfigError(f"cannot make a Python package name from {name!r}",
                          hint="start the name with a letter, e.g. 'serotiny init my_project'")
    return package


def _destination(relative: Path, package: str) -> Path:
    parts = [package if p == "PACKAGE" else p.replace("dot-", ".", 1) if p.startswith("dot-") else p
             for p in relative.parts]
    return Path(*parts).with_suffix("") if relative.suffix == ".tmpl" else Path(*parts)


def write_manifest(path: Path, seed: int = 0) -> None:
    """A manifest whose 16 features come from 2 hidden factors: a VAE can find them,
    and a regressor can predict the first (the ``target`` column) from them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(N_ROWS, N_FACTORS))
    mixing = rng.normal(size=(N_FACTORS, N_FEATURES))
    features = np.tanh(factors @ mixing) + 0.05 * rng.normal(size=(N_ROWS, N_FEATURES))
    frame = pd.DataFrame(features.astype("float32"),
                         columns=[f"feature_{i}" for i in range(N_FEATURES)])
    frame["target"] = factors[:, 0].astype("float32")  # a regression target (model=basic_model)
    frame.insert(0, "split", rng.choice(["train", "val", "test"], size=N_ROWS, p=[0.7, 0.15, 0.15]))
    frame.insert(0, "sample_id", [f"sample_{i:04d}" for i in range(N_ROWS)])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def init_project(name: str, description: str = "a serotiny project", where: Path | None = None) -> int:
    """Write project ``name`` into a new folder; refuse to touch an existing one."""
    package = package_name(name)
    root = (where or Path.cwd()) / name
    if root.exists():
        raise ConfigError(f"{root} already exists", hint="choose another name or remove the folder")
    values = {"{package}": package, "{name}": name, "{description}": description}
    for source in sorted(p for p in TEMPLATE.rglob("*") if p.is_file()):
        target = root / _destination(source.relative_to(TEMPLATE), package)
        text = source.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(key, value)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    write_manifest(root / "data" / "manifest.csv")
    # Quoted for the shell where needed ('My Project'), so the lines paste as they are.
    store = shlex.quote(f"sqlite:///{root}/mlflow.db")
    print(f"created {root}\n\n  cd {shlex.quote(name)}\n  serotiny train\n\n"
          f"then look at the runs with: mlflow ui --backend-store-uri {store}")
    return 0
