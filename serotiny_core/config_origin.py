"""Which file a key of the composed config came from, for errors that should name it.

Hydra merges files into one config and keeps no per-key origin, but it
keeps what is enough to find it again: the option chosen for each group
(``runtime.choices``), the search path (``runtime.config_sources``) and the
command-line overrides. A key under ``trainer.callbacks`` came from the
option chosen for ``trainer/callbacks``, found in the first source that has
that file, unless an override set it.
"""

from __future__ import annotations

import re
from importlib import util
from pathlib import Path
from typing import Any


def config_folder(source: str) -> tuple[Path, Path] | None:
    """A ``pkg://`` or ``file://`` config source's folder, and the folder paths are shown from
    (the one holding its top-level package). None for other schemes or a missing package."""
    if source.startswith("file://"):
        folder = Path(source.removeprefix("file://"))
        return folder, folder.parent
    if not source.startswith("pkg://"):
        return None
    package = source.removeprefix("pkg://").strip("/").replace("/", ".")
    try:
        spec = util.find_spec(package)
    except Exception:  # its parent package fails to import
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder, folder.parents[len(package.split(".")) - 1]


def _group_and_option(parts: list[str], choices: Any) -> tuple[str, str] | None:
    """The deepest group whose name the key path starts with, and its chosen option."""
    for length in range(len(parts), 0, -1):
        group = "/".join(parts[:length])
        if choices.get(group):
            return group, str(choices[group])
    return None


def _overridden(key_path: str, overrides: list[str]) -> bool:
    key_path = re.sub(r"\[(\d+)\]", r".\1", key_path)  # callbacks[0] is callbacks.0 on the command line
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key_path == key or key_path.startswith(f"{key}.") or key_path.startswith(f"{key}["):
            return True
    return False


def origin_of(key_path: str) -> str | None:
    """``"the command line"`` or the YAML file ``key_path`` (``model._target_``) came from;
    None outside a Hydra job or where no file holds it (a generated component option)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    runtime = HydraConfig.get().runtime
    if _overridden(key_path, list(HydraConfig.get().overrides.task)):
        return "the command line"
    parts = [p for p in re.split(r"[.\[\]]", key_path) if p and not p.isdigit()]
    found = _group_and_option(parts, runtime.choices)
    relative = f"{found[0]}/{found[1]}.yaml" if found else f"{HydraConfig.get().job.config_name}.yaml"
    for source in runtime.config_sources:
        located = config_folder(f"{source.schema}://{source.path}")
        if located is not None and (located[0] / relative).is_file():
            return str(located[0] / relative)
    return None
