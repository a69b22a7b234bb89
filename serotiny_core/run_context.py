"""MLflow's standard context tags for a run: user, source, git; asked about the project.

Runs in the MLflow process. MLflow's context providers describe "the main
file" (``sys.argv[0]``): here that would be the MLflow process's own module,
and for the command the ``serotiny`` executable in some environment, whose
git repository (if any) is not the project's. So they are asked about the
project folder instead: ``mlflow.source.name`` is the project folder and the
git tags (``mlflow.source.git.commit``, ``.branch``, ``.repoURL`` without
credentials) are those of the checkout holding it, worktrees and submodules
included. ``mlflow.source.git.dirty`` says whether tracked files were changed
since that commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

GIT_COMMIT = "mlflow.source.git.commit"
GIT_DIRTY = "mlflow.source.git.dirty"


def context_tags(project_root: Path) -> dict[str, str]:
    """``resolve_tags()`` of MLflow's context providers, with the project as the main file."""
    from mlflow.tracking.context.registry import resolve_tags

    saved = sys.argv[:]
    sys.argv[:] = [str(project_root)]
    try:
        tags = dict(resolve_tags())
    finally:
        sys.argv[:] = saved
    if GIT_COMMIT in tags:
        dirty = _dirty(project_root)
        if dirty is not None:
            tags[GIT_DIRTY] = str(dirty).lower()
    return tags


def _dirty(root: Path) -> bool | None:
    """Whether tracked files differ from HEAD (untracked files do not count, as in MLflow)."""
    try:
        import git

        return git.Repo(root, search_parent_directories=True).is_dirty(untracked_files=False)
    except Exception:  # noqa: BLE001 - no git executable, a broken checkout: no flag
        return None


def manifest_input(path: Path, context: str) -> object | None:
    """The manifest as an MLflow dataset input (name, source, digest, schema, row count).

    None when ``path`` is not a CSV or parquet file: the datamodule, not
    tracking, reports a manifest it cannot read.
    """
    if path.suffix not in (".csv", ".parquet") or not path.is_file():
        return None
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception:  # noqa: BLE001 - see above
        return None
    dataset = mlflow.data.from_pandas(frame, source=str(path), name=path.name)
    return DatasetInput(dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)])
