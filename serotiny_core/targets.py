"""Resolve and check every ``_target_`` of a composed config before any work.

Resolution order (CONTRACT §3): a registered component name or alias
(``<plugin>:<name>`` on a clash), then an importable dotted path. Each
``_target_`` node's keys are checked against the target's signature, so a
typo like ``latent_dimm`` stops the command before any data is read.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from serotiny_core.errors import ConfigError
from serotiny_core.plugins import Plugins, one_line
from serotiny_core.registry import Registry

RESERVED_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
STRICT_ALLOWED = ("torch.nn.*", "torch.optim.*", "pytorch_lightning.callbacks.*",
                  "pytorch_lightning.Trainer")
LIST_HINT = "see 'serotiny list-components'"


def import_object(path: str) -> Any:
    """Import ``pkg.mod.Attr`` (or ``pkg.mod:Attr``): the longest importable module, then attributes.

    A module that exists but fails inside (its own missing dependency, a
    syntax error) raises that error, not a misleading 'no such module'.
    """
    parts = path.replace(":", ".").split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
                continue
            raise
        for position in range(split, len(parts)):
            if not hasattr(obj, parts[position]):
                raise ImportError(f"cannot import {'.'.join(parts[:position + 1])!r}")
            obj = getattr(obj, parts[position])
        return obj
    raise ImportError(f"no module named {parts[0]!r}")


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
            raise ConfigError(f"{path}._target_: {self._why_unknown(value, target, error)}",
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


def check_arguments(path: str, node: DictConfig, obj: Any, target: str) -> None:
    """Unknown keys and missing required arguments, named before anything runs."""
    signature = _signature(obj)
    if signature is None:
        return
    params = signature.parameters
    keys = [str(k) for k in node.keys() if k not in RESERVED_KEYS]
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    unknown = [] if takes_kwargs else [k for k in keys if k not in params]
    if unknown:
        close = difflib.get_close_matches(unknown[0], named, n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{path}: {target} has no argument {unknown[0]!r}",
                          hint=f"{guess}valid arguments: {', '.join(named) or '(none)'}")
    if node.get("_partial_", False) or "_args_" in node:
        return
    required = [n for n, p in params.items() if p.default is p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    missing = [n for n in required if n not in keys or OmegaConf.is_missing(node, n)]
    if missing:
        raise ConfigError(f"{path}: {target} needs {', '.join(repr(m) for m in missing)}",
                          hint=f"set it in the config or on the command line, e.g. {path}.{missing[0]}=...")
