"""Lightning's two namespaces: ``pytorch_lightning`` and ``lightning.pytorch``.

The same library ships twice: as ``pytorch_lightning`` and, inside the
unified ``lightning`` package, as ``lightning.pytorch``. Their classes are
distinct, and a Trainer of one refuses a LightningModule of the other. A
job therefore runs in one namespace, the model's: the stock Trainer a
config names (either spelling) becomes the model's namespace's Trainer,
Lightning's own classes named in the trainer config (callbacks, loggers,
strategies) are taken from that namespace, and serotiny's helpers (its
MLflow logger, its callbacks, the ``last.ckpt`` ModelCheckpoint) are made
from it too. A datamodule of the other namespace is bridged; only what
cannot work (a custom Trainer, or a checkpoint or progress-bar callback, of
the other namespace) is refused with one line.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from omegaconf import DictConfig, ListConfig, open_dict

from serotiny_core.errors import ConfigError

PL = "pytorch_lightning"
LIGHTNING = "lightning.pytorch"
# What ``lightning`` exports at its top level, and where it lives in each namespace.
TOP_LEVEL = ("Trainer", "LightningModule", "LightningDataModule", "Callback", "seed_everything")
# The callbacks a Trainer finds by class: one of the other namespace would be ignored by it.
FOUND_BY_CLASS = ("callbacks.Checkpoint", "callbacks.ProgressBar")
DATAMODULE_HOOKS = ("prepare_data", "setup", "teardown", "train_dataloader", "val_dataloader",
                    "test_dataloader", "predict_dataloader", "transfer_batch_to_device",
                    "on_before_batch_transfer", "on_after_batch_transfer", "state_dict",
                    "load_state_dict", "on_exception")


def namespace_of(obj: Any) -> str | None:
    """The Lightning namespace a class (or an object's class) derives from; None for neither."""
    cls = obj if isinstance(obj, type) else type(obj)
    for klass in cls.__mro__:
        module = klass.__module__
        if module == PL or module.startswith(PL + "."):
            return PL
        if module == LIGHTNING or module.startswith(LIGHTNING + "."):
            return LIGHTNING
    return None


def lightning(namespace: str) -> Any:
    return importlib.import_module(namespace)


def attribute(namespace: str, path: str) -> Any:
    """``attribute("lightning.pytorch", "callbacks.ModelCheckpoint")``."""
    module, _, name = f"{namespace}.{path}".rpartition(".")
    return getattr(importlib.import_module(module), name)


def other(namespace: str) -> str:
    return LIGHTNING if namespace == PL else PL


def target_in(target: str, namespace: str) -> str:
    """A Lightning import path spelled in ``namespace``; any other path unchanged."""
    for prefix in (f"{PL}.", f"{LIGHTNING}."):
        if target.startswith(prefix):
            return f"{namespace}.{target.removeprefix(prefix)}"
    module, _, name = target.rpartition(".")
    if module == "lightning" and name in TOP_LEVEL:
        return f"{namespace}.{name}"
    return target


def translate(node: Any, namespace: str) -> None:
    """Spell every Lightning ``_target_`` under ``node`` in ``namespace`` (in place)."""
    if isinstance(node, DictConfig):
        target = node.get("_target_")
        if isinstance(target, str):
            with open_dict(node):
                node._target_ = target_in(target, namespace)
        for key in node:
            translate(node._get_node(key), namespace)
    elif isinstance(node, ListConfig):
        for index in range(len(node)):
            translate(node._get_node(index), namespace)


def job_namespace(trainer_target: str, model: Any) -> str:
    """The namespace the job runs in: the model's, unless a custom Trainer decides it."""
    from serotiny_core.targets import import_object

    trainer_cls = import_object(trainer_target)
    model_ns, trainer_ns = namespace_of(model), namespace_of(trainer_cls)
    if model_ns is None or trainer_ns is None or model_ns == trainer_ns:
        return model_ns or trainer_ns or PL
    if trainer_cls is lightning(trainer_ns).Trainer:  # a stock Trainer: either spelling will do
        return model_ns
    raise ConfigError(
        f"trainer {trainer_target} is a {trainer_ns} Trainer but model {type(model).__name__} "
        f"is a {model_ns} LightningModule",
        hint=f"make {trainer_cls.__name__} subclass {model_ns}.Trainer (or the model "
             f"{trainer_ns}.LightningModule): both must come from one Lightning namespace")


def check_callbacks(callbacks: list[Any], namespace: str) -> None:
    """Refuse the callbacks of the other namespace that its Trainer would silently ignore."""
    foreign = other(namespace)
    for callback in callbacks:
        if namespace_of(callback) != foreign:
            continue
        for path in FOUND_BY_CLASS:
            try:
                base = attribute(foreign, path)
            except ImportError:  # the other namespace is not installed: nothing is from it
                return
            if isinstance(callback, base):
                raise ConfigError(
                    f"callback {type(callback).__name__} is a {foreign} {path.split('.')[-1]} but "
                    f"the model is a {namespace} LightningModule, whose Trainer would ignore it",
                    hint=f"subclass {namespace}.{path} in {type(callback).__module__} "
                         f"(Lightning's own classes may be named in either spelling)")


@functools.cache
def on_namespace(body: type, base_path: str, namespace: str) -> type:
    """``body`` as a subclass of ``namespace``'s ``base_path`` (``"Callback"``, ...)."""
    base = attribute(namespace, base_path)

    def reduce(helper: Any) -> tuple:  # made here, the class has no import path of its own
        return _readopt, (body, base_path, namespace, helper.__dict__)

    return type(body.__name__, (body, base), {"__module__": body.__module__, "__doc__": body.__doc__,
                                             "_serotiny_body": body, "__reduce__": reduce})


def _readopt(body: type, base_path: str, namespace: str, state: dict) -> Any:
    """An adopted helper again, in a process that unpickles it (a spawned DDP rank)."""
    helper = object.__new__(on_namespace(body, base_path, namespace))
    helper.__dict__.update(state)
    return helper


def adopt(helper: Any, base_path: str, namespace: str) -> Any:
    """One of serotiny's helpers, given the base class of the trainer's namespace.

    The helpers (callbacks, the MLflow logger) are written once without a
    Lightning base, and made here before the trainer sees them; Lightning's
    base classes (Callback, Logger) hold no state of their own, so nothing
    is left unset. Their callers keep the same object.
    """
    body = getattr(type(helper), "_serotiny_body", type(helper))
    helper.__class__ = on_namespace(body, base_path, namespace)
    return helper


class DataModuleBridge:
    """A datamodule of the other namespace, seen by the Trainer as one of its own.

    Each hook the datamodule overrides is passed on to it (so Lightning still
    knows which loaders exist), as is any other attribute (``identifiers``
    for the prediction writer, a plugin's own helpers).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lightning_base.__init__(self)  # type: ignore[attr-defined]

    @property
    def trainer(self) -> Any:
        return self._inner.trainer

    @trainer.setter
    def trainer(self, value: Any) -> None:
        if "_inner" in self.__dict__:
            self._inner.trainer = value

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)


def _passed_on(hook: str) -> Any:
    def call(self: DataModuleBridge, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, hook)(*args, **kwargs)
    call.__name__ = hook
    return call


@functools.cache
def _bridge_class(namespace: str, hooks: tuple[str, ...]) -> type:
    base = attribute(namespace, "LightningDataModule")
    methods = {hook: _passed_on(hook) for hook in hooks}

    def reduce(bridge: DataModuleBridge) -> tuple:  # see on_namespace
        return bridge_datamodule, (bridge._inner, namespace)

    return type("DataModuleBridge", (DataModuleBridge, base),
                {**methods, "__module__": __name__, "_lightning_base": base, "__reduce__": reduce})


def bridge_datamodule(datamodule: Any, namespace: str | None) -> Any:
    """``datamodule`` as the Trainer of ``namespace`` needs it (itself when it already fits)."""
    if datamodule is None or namespace is None:
        return datamodule
    foreign = other(namespace)
    if namespace_of(datamodule) != foreign:
        return datamodule
    base = attribute(foreign, "LightningDataModule")
    hooks = tuple(h for h in DATAMODULE_HOOKS if getattr(type(datamodule), h) is not getattr(base, h))
    return _bridge_class(namespace, hooks)(datamodule)
