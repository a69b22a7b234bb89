"""Resolve and check every ``_target_`` of a composed config before any work.

A ``_target_`` is looked up first as a registered component name or alias
(``<plugin>:<name>`` where two plugins register the name), then as an
importable dotted path. Each ``_target_`` node's keys are checked against
the target's signature, so a typo like ``latent_dimm`` stops the command
before any data is read.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from serotiny_core.errors import ConfigError, one_line
from serotiny_core.imports import import_object
from serotiny_core.plugins import Plugins
from serotiny_core.registry import Registry

DEFAULT_TRAINER = "pytorch_lightning.Trainer"  # what a trainer node without _target_ builds
RESERVED_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
# Lightning's own classes in either of its namespaces (see serotiny_core.lightning_ns).
STRICT_ALLOWED = ("torch.nn.*", "torch.optim.*", "pytorch_lightning.callbacks.*",
                  "pytorch_lightning.loggers.*", "pytorch_lightning.Trainer",
                  "lightning.pytorch.callbacks.*", "lightning.pytorch.loggers.*",
                  "lightning.pytorch.Trainer", "lightning.Trainer")
LIST_HINT = "see 'serotiny list-components'"


def target_nodes(node: Any, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every node holding a ``_target_``, with its dotted key path, depth first."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path or "<root>", node
        for key in node.keys():
            if not OmegaConf.is_missing(node, key):
                yield from target_nodes(node._get_node(key), f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for index in range(len(node)):
            yield from target_nodes(node._get_node(index), f"{path}[{index}]")


def _from_file(path: str) -> str:
    """`` (from FILE)`` naming where the key was set, when that can be told."""
    from serotiny_core.config_origin import origin_of

    origin = origin_of(f"{path}._target_")
    return f" (from {origin})" if origin else ""


class TargetResolver:
    """Resolves names through the registry and imports what configs name."""

    def __init__(self, plugins: Plugins, strict: bool = False, allow: tuple[str, ...] = ()) -> None:
        self.plugins = plugins
        self.registry = Registry(plugins.components)
        self.strict = strict
        self.allow = STRICT_ALLOWED + tuple(allow)

    def resolve(self, cfg: DictConfig) -> None:
        """Rewrite every ``_target_`` to an import path, import it and check its arguments."""
        for path, node in list(target_nodes(cfg)):
            value = node._target_
            target = self._lookup(path, value)
            obj = self._import(path, value, target)
            with open_dict(node):
                node._target_ = target
            check_arguments(path, node, obj, target)

    def _lookup(self, path: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}._target_ must be a name or import path, got {value!r}")
        component = self.registry.find(value)
        if component is not None:
            return component.target
        target = value.replace(":", ".")
        if self.strict and "." not in target:  # a name, not a path: say which names exist
            raise ConfigError(f"{path}._target_{_from_file(path)}: unknown target {value!r}: "
                              f"no component has that name",
                              hint=self._suggestion(value))
        if self.strict and not self._allowed(target):
            raise ConfigError(
                f"{path}._target_: --strict refuses {value!r}, which is neither a registered "
                f"component nor on the allow-list ({', '.join(self.allow)})",
                hint="add a pattern to [tool.serotiny] allow_targets in pyproject.toml")
        return target

    def _allowed(self, target: str) -> bool:
        """Under --strict: a registered component's import path, or one the allow-list matches."""
        return (self.registry.registers_target(target)
                or any(fnmatch.fnmatchcase(target, pattern) for pattern in self.allow))

    def _import(self, path: str, value: str, target: str) -> Any:
        try:
            return import_object(target)
        except Exception as error:
            component = self.registry.find(value)
            if component is not None:
                raise ConfigError(
                    f"{path}._target_: {value!r} is registered by plugin {component.plugin!r} "
                    f"({component.distribution}=={component.version}) as {target!r}, which fails to "
                    f"import: {one_line(error)}",
                    hint=f"reinstall or fix {component.distribution or component.plugin}") from None
            raise ConfigError(f"{path}._target_{_from_file(path)}: {self._why_unknown(value, target, error)}",
                              hint=self._suggestion(value)) from None

    def _why_unknown(self, value: str, target: str, error: Exception) -> str:
        broken = self.plugins.broken_providing(target)
        if broken is not None:
            return (f"{value!r} comes from plugin {broken.name!r} ({broken.distribution}), "
                    f"which failed to load: {broken.error}")
        if "." not in target:
            return f"unknown target {value!r}: no component has that name"
        return f"cannot import {value!r}: {one_line(error)}"

    def _suggestion(self, value: str) -> str:
        close = self.registry.suggest(value)
        return f"did you mean {', '.join(repr(c) for c in close)}? {LIST_HINT}" if close else LIST_HINT


def _signature(obj: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):  # builtins and C types without a signature
        return None


def _named(params: Any) -> list[str]:
    return [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def argument_names(obj: Any) -> list[str] | None:
    """The arguments a config node may give ``obj``; None when it takes any (``**kwargs``, no signature)."""
    signature = _signature(obj)
    if signature is None or any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return _named(signature.parameters)


def did_you_mean(name: str, candidates: list[str]) -> str:
    """``"did you mean 'x'? "`` for the closest candidate, or nothing."""
    close = difflib.get_close_matches(name, candidates, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def no_argument(path: str, target: str, name: str, named: list[str]) -> ConfigError:
    """The error for a key ``target`` takes no argument of, with the closest valid ones."""
    return ConfigError(f"{path}: {target} has no argument {name!r}",
                       hint=f"{did_you_mean(name, named)}valid arguments: {', '.join(named) or '(none)'}")


def check_arguments(path: str, node: DictConfig, obj: Any, target: str) -> None:
    """Unknown keys and missing required arguments, named before anything runs."""
    signature = _signature(obj)
    if signature is None:
        return
    params = signature.parameters
    keys = [str(k) for k in node.keys() if k not in RESERVED_KEYS]
    named = _named(params)
    unknown = [k for k in keys if k not in named] if argument_names(obj) is not None else []
    if unknown:
        raise no_argument(path, target, unknown[0], named)
    if node.get("_partial_", False) or "_args_" in node:
        return
    required = [n for n, p in params.items() if p.default is p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    missing = [n for n in required if n not in keys or OmegaConf.is_missing(node, n)]
    if missing:
        raise ConfigError(f"{path}: {target} needs {', '.join(repr(m) for m in missing)}",
                          hint=f"set it in the config or on the command line, e.g. {path}.{missing[0]}=...")
