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


def _destination(relative: Path, names: dict[str, str]) -> Path:
    """A template path's place in the new folder: placeholders in names replaced,
    ``dot-x`` -> ``.x``, the ``.tmpl`` suffix (which keeps tools off template code) dropped."""
    parts = []
    for part in relative.parts:
        for placeholder, value in names.items():
            part = part.replace(placeholder, value)
        parts.append(part.replace("dot-", ".", 1) if part.startswith("dot-") else part)
    return Path(*parts).with_suffix("") if relative.suffix == ".tmpl" else Path(*parts)


def copy_template(template: Path, root: Path, values: dict[str, str], names: dict[str, str]) -> None:
    """Copy ``template`` to ``root``, ``{key}`` in file texts from ``values``, path parts from ``names``."""
    for source in sorted(p for p in template.rglob("*") if p.is_file()):
        target = root / _destination(source.relative_to(template), names)
        text = source.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(key, value)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def new_folder(name: str, where: Path | None) -> Path:
    """The folder a scaffold writes: new, never an existing one."""
    root = (where or Path.cwd()) / name
    if root.exists():
        raise ConfigError(f"{root} already exists", hint="choose another name or remove the folder")
    return root


def write_manifest(path: Path, seed: int = 0, rows: int = N_ROWS, features: int = N_FEATURES,
                   splits: tuple[str, ...] = ("train", "val", "test")) -> None:
    """A manifest whose features come from 2 hidden factors: a VAE can find them,
    and a regressor can predict the first (the ``target`` column) from them.

    The first split gets 70% of the rows and the others share the rest, as
    a train/val/test manifest would; tests choose other shapes.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(rows, N_FACTORS))
    mixing = rng.normal(size=(N_FACTORS, features))
    values = np.tanh(factors @ mixing) + 0.05 * rng.normal(size=(rows, features))
    frame = pd.DataFrame(values.astype("float32"), columns=[f"feature_{i}" for i in range(features)])
    frame["target"] = factors[:, 0].astype("float32")  # a regression target (model=basic_model)
    rest = [0.3 / (len(splits) - 1)] * (len(splits) - 1) if len(splits) > 1 else []
    frame.insert(0, "split", rng.choice(list(splits), size=rows, p=[1.0 - sum(rest), *rest]))
    frame.insert(0, "sample_id", [f"sample_{i:04d}" for i in range(rows)])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def init_project(name: str, description: str = "a serotiny project", where: Path | None = None) -> int:
    """Write project ``name`` into a new folder; refuse to touch an existing one."""
    package = package_name(name)
    root = new_folder(name, where)
    values = {"{package}": package, "{name}": name, "{description}": description}
    copy_template(TEMPLATE, root, values, {"PACKAGE": package})
    write_manifest(root / "data" / "manifest.csv")
    # Quoted for the shell where needed ('My Project'), so the lines paste as they are.
    store = shlex.quote(f"sqlite:///{root}/mlflow.db")
    print(f"created {root}\n\n  cd {shlex.quote(name)}\n  serotiny train\n\n"
          f"then look at the runs with: mlflow ui --backend-store-uri {store}")
    return 0
