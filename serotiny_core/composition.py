"""Three rules serotiny adds to Hydra's composition, where Hydra has no hook.

1. **Files selected together from one group are combined, lists included.**
   ``trainer/callbacks=[early_stopping,extras]`` merges both files into
   ``trainer.callbacks``; Hydra merges mappings key by key but lets a later
   list replace an earlier one, so only the last file's callbacks would run.
   Before merging, the selected files of one group are combined: lists are
   concatenated in the order selected; if any file is a mapping (name ->
   spec, as in the lightning-hydra-template) the result is a mapping where
   each list-form file sits under its option name. One file alone is
   composed exactly as Hydra composes it.
2. **Every key serotiny or a constructor reads is settable without ``+``.**
   A plain ``key=value`` override of a key the composed config lacks is
   added when the key is an argument of the class named by the nearest
   enclosing ``_target_`` (``trainer.strategy=ddp``), or a top-level key
   serotiny reads (``ckpt_path``, ``mlflow.run_id``, ...). Otherwise it stops
   with one line and the closest valid names (``trainer.max_epoch`` -> did
   you mean ``max_epochs``?), before anything is built. Overrides inside
   plain mappings keep Hydra's own rule and message (add them with ``+``).
3. **``--help`` lists the groups a user picks from**, not the packaged
   ``defaults/`` folder that projects inherit from.

Hydra 1.3 offers no extension point for these, so this module wraps three of
its methods (:func:`install`, done on import). The wrappers live in every
process that composes: launchers that run jobs elsewhere (joblib, submitit)
import this module when they unpickle the task.
"""

from __future__ import annotations

import dataclasses
import posixpath
from typing import Any, Callable, Iterable

from hydra.core.override_parser.types import OverrideType
from omegaconf import DictConfig, ListConfig, OmegaConf

from serotiny_core.errors import ConfigError
from serotiny_core.plugins import get_plugins
from serotiny_core.imports import import_object
from serotiny_core.registry import Registry
from serotiny_core.targets import DEFAULT_TRAINER, argument_names, did_you_mean, no_argument

# Top-level keys the train/test/predict flows read; `mlflow.*` keys come from TrackingSettings.
FRAMEWORK_KEYS = ("seed", "ckpt_path", "test_after_fit", "optimized_metric", "fresh_sweep")
INTERNAL_GROUPS = ("defaults",)
DEFAULT_TARGETS = {"trainer": DEFAULT_TRAINER}  # a trainer node may leave out _target_


# 1. Combining the files selected from one group ----------------------------------------------

def _selections(defaults: Iterable[Any]) -> list[list[Any]]:
    """The defaults that share a group and a package: one list-valued group selection each."""
    by_slot: dict[tuple[str, str | None], list[Any]] = {}
    for default in defaults:
        if default.is_self or default.config_path is None:
            continue
        slot = (posixpath.dirname(default.config_path), default.package)
        by_slot.setdefault(slot, []).append(default)
    return [members for members in by_slot.values() if len(members) > 1]


def _option(config_path: str) -> str:
    return posixpath.basename(config_path)


def combine(group: str, named: list[tuple[str, Any]]) -> Any:
    """One content for several selected files: lists concatenated; with any mapping, a mapping.

    In the mapping, each list-form file sits under its option name, and
    mapping-form files contribute their own keys (later files win, as in
    Hydra). Empty files contribute nothing.
    """
    contents = [(name, c) for name, c in named if len(c) > 0]
    if all(isinstance(c, ListConfig) for _, c in contents):
        return OmegaConf.create([item for _, c in contents for item in OmegaConf.to_container(c)])
    merged = OmegaConf.create({})
    for name, content in contents:
        entries = {name: content} if isinstance(content, ListConfig) else {
            k: v for k, v in content.items() if k != "defaults"}
        clash = next((k for k, v in entries.items()
                      if k in merged and isinstance(v, ListConfig) != isinstance(merged[k], ListConfig)), None)
        if clash is not None:
            raise ConfigError(f"{group}: {clash!r} names both a list-form file and an entry of a "
                              "mapping-form file selected with it",
                              hint="rename the file or the entry")
        merged.merge_with(entries)
    return merged


class _CombiningRepository:
    """Hydra's config repository, answering each file of a combined selection with the combination."""

    def __init__(self, repo: Any, combined: dict[str, Any]) -> None:
        self._repo = repo
        self._combined = combined

    def load_config(self, config_path: str) -> Any:
        loaded = self._repo.load_config(config_path=config_path)
        if loaded is None or config_path not in self._combined:
            return loaded
        return dataclasses.replace(loaded, config=self._combined[config_path])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)


def _combined_contents(defaults: list[Any], repo: Any) -> dict[str, Any]:
    """config path -> the combined content, for every selection that holds a list-form file."""
    combined: dict[str, Any] = {}
    for members in _selections(defaults):
        loaded = [(m.config_path, repo.load_config(config_path=m.config_path)) for m in members]
        contents = [(_option(path), result.config) for path, result in loaded if result is not None]
        if not any(isinstance(content, ListConfig) for _, content in contents):
            continue  # mappings merge key by key already
        content = combine(posixpath.dirname(members[0].config_path), contents)
        combined.update({m.config_path: content for m in members})
    return combined


def _compose_combining(original: Callable[..., DictConfig]) -> Callable[..., DictConfig]:
    def compose(self: Any, defaults: list[Any], repo: Any) -> DictConfig:
        combined = _combined_contents(defaults, repo)
        if combined:
            repo = _CombiningRepository(repo, combined)
        return original(self, defaults=defaults, repo=repo)

    compose.__wrapped__ = original  # type: ignore[attr-defined]
    return compose


# 2. Adding keys that serotiny or a constructor reads ------------------------------------------

def framework_paths() -> list[str]:
    """Every dotted key serotiny reads at the top of a config."""
    from serotiny_core.tracking import TrackingSettings

    return [*FRAMEWORK_KEYS, *(f"mlflow.{name}" for name in TrackingSettings.__dataclass_fields__)]


def _child(node: Any, part: str) -> Any:
    """``node[part]`` for a mapping or a list (by index); None where there is none."""
    if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
        return node._get_node(part) if part in node.keys() else None
    if isinstance(node, ListConfig) and not node._is_missing() and not node._is_none():
        return node._get_node(int(part)) if part.isdigit() and int(part) < len(node) else None
    return None


def _existing(cfg: DictConfig, parts: list[str]) -> list[Any]:
    """The nodes the leading parts of a key path name, as far as they exist."""
    nodes: list[Any] = [cfg]
    for part in parts:
        child = _child(nodes[-1], part)
        if child is None:
            break
        nodes.append(child)
    return nodes


def _absent(cfg: DictConfig, key: str) -> bool:
    parts = key.split(".")
    return len(_existing(cfg, parts)) <= len(parts)


def _target_of(node: Any, path: str) -> str | None:
    if not isinstance(node, DictConfig):
        return None
    target = node.get("_target_") if "_target_" in node else DEFAULT_TARGETS.get(path)
    return target if isinstance(target, str) else None


def _arguments(target: str) -> list[str] | None:
    """The keyword arguments ``target`` takes; None when it takes any (``**kwargs``) or is unknown."""
    try:
        component = Registry(get_plugins().components).find(target)
        obj = import_object(component.target if component else target)
    except Exception:  # an unknown or broken target is reported when targets are resolved
        return None
    return argument_names(obj)


def _unknown_key(key: str, candidates: list[str]) -> ConfigError:
    return ConfigError(f"cannot set {key!r}: no such key (known: {', '.join(candidates)})",
                       hint=f"{did_you_mean(key, candidates)}to add a key of your own, write +{key}=...")


def may_add(cfg: DictConfig, key: str) -> bool:
    """Whether a plain override may add ``key``, which ``cfg`` lacks.

    True for an argument of the nearest enclosing ``_target_`` and for keys
    serotiny reads; a did-you-mean :class:`ConfigError` for any other key
    of such a node, or of the top level or ``mlflow``; False (Hydra's rule)
    for a key inside a plain mapping.
    """
    parts = key.split(".")
    nodes = _existing(cfg, parts)
    depth = len(nodes) - 1
    parent, parent_path, new = nodes[-1], ".".join(parts[:depth]), parts[depth]
    target = _target_of(parent, parent_path)
    if target is not None:
        names = _arguments(target)
        if names is None or new in names:
            return True
        raise no_argument(parent_path or "<root>", target, new, names)
    framework = framework_paths()
    if any(key == path or key.startswith(path + ".") for path in framework):
        return True
    if parent_path not in ("", "mlflow"):
        return False
    prefix = f"{parent_path}." if parent_path else ""
    present = [f"{prefix}{k}" for k in parent.keys() if k != "hydra"]
    known = sorted({p for p in framework if p.startswith(prefix)} | set(present))
    raise _unknown_key(key, known)


def _apply_adding(original: Callable[..., None]) -> Callable[..., None]:
    """Plain overrides of keys the config lacks are added where :func:`may_add` allows.

    They are applied after the others, so ``model._target_=X model.arg=1``
    checks ``arg`` against ``X`` whatever the order.
    """
    def apply(overrides: list[Any], cfg: DictConfig) -> None:
        present, absent = [], []
        for override in overrides:
            new = (override.type is OverrideType.CHANGE and override.package is None
                   and not override.is_hydra_override() and "/" not in override.key_or_group
                   and _absent(cfg, override.key_or_group))
            (absent if new else present).append(override)
        original(present, cfg)
        for override in absent:
            if may_add(cfg, override.key_or_group):
                OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True, force_add=True)
            else:
                original([override], cfg)

    apply.__wrapped__ = original  # type: ignore[attr-defined]
    return apply


# 3. --help without internal groups ------------------------------------------------------------

def user_group(group: str) -> bool:
    """Whether ``--help`` lists ``group``: not the packaged ``defaults/`` that projects inherit from."""
    return not any(group == g or group.startswith(g + "/") for g in INTERNAL_GROUPS)


def _listing_user_groups(original: Callable[..., str]) -> Callable[..., str]:
    def format_config_groups(self: Any, predicate: Callable[[str], bool], compact: bool = True) -> str:
        return original(self, lambda group: predicate(group) and user_group(group), compact)

    format_config_groups.__wrapped__ = original  # type: ignore[attr-defined]
    return format_config_groups


def install() -> None:
    """Wrap Hydra's methods once per process."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra

    if hasattr(ConfigLoaderImpl._compose_config_from_defaults_list, "__wrapped__"):
        return
    ConfigLoaderImpl._compose_config_from_defaults_list = _compose_combining(
        ConfigLoaderImpl._compose_config_from_defaults_list)
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(_apply_adding(
        ConfigLoaderImpl._apply_overrides_to_config))
    Hydra.format_config_groups = _listing_user_groups(Hydra.format_config_groups)


install()
