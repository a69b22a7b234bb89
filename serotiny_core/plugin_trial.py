"""The part of ``serotiny check-plugin`` that runs a plugin's code on synthetic data.

Each packaged YAML file is composed by Hydra as a project would select it
(``model=<file>``), with the plugin's config sources first on the search
path, and its targets resolved and arguments checked as a run would. The
data configs' loaders, and the plugin's loaders that need no arguments, are
compared row by row against ``load_frame`` on a synthetic manifest (the one
``serotiny init`` writes). Each model config trains one batch
(``fast_dev_run``) on each data config in turn until one works.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from omegaconf import DictConfig

from serotiny_core.component import Component
from serotiny_core.errors import ConfigError, DataError, one_line
from serotiny_core.plugins import Plugins
from serotiny_core.resolvers import ROOT_ENV

if TYPE_CHECKING:
    from serotiny_core.check_plugin import PackagedConfig, Report

COMPARED_ROWS = 8
QUIET_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning")


@contextlib.contextmanager
def _synthetic_project() -> Iterator[Path]:
    """A folder with ``data/manifest.csv`` that ``${project_root:}`` points at meanwhile."""
    from serotiny_core.scaffold import write_manifest

    previous = os.environ.get(ROOT_ENV)
    with tempfile.TemporaryDirectory(prefix="serotiny-check-") as folder:
        write_manifest(Path(folder) / "data" / "manifest.csv")
        (Path(folder) / "config").mkdir()  # Hydra's primary folder: empty, all else is the plugin's
        os.environ[ROOT_ENV] = folder
        try:
            yield Path(folder)
        finally:
            if previous is None:
                os.environ.pop(ROOT_ENV, None)
            else:
                os.environ[ROOT_ENV] = previous


@contextlib.contextmanager
def _composing(plugin: str, plugins: Plugins, sources: list[str], empty: Path) -> Iterator[None]:
    """Hydra's compose API on an empty primary folder, the plugin's own sources searched first."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from serotiny_core.hydra_app import HYDRA_VERSION_BASE, SerotinySearchPath, _install_search_path

    _install_search_path(plugins)
    mine = [(f"serotiny-plugin:{plugin}", source) for source in sources]
    SerotinySearchPath.sources = mine + [s for s in SerotinySearchPath.sources if s not in mine]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(empty), version_base=HYDRA_VERSION_BASE):
            yield
    finally:
        GlobalHydra.instance().clear()


def _compose(report: Report, config: PackagedConfig, plugins: Plugins) -> DictConfig | None:
    """``+group=option`` composed and its targets resolved; None (and a problem) if that fails."""
    from hydra import compose

    from serotiny_core.hydra_errors import translate
    from serotiny_core.targets import TargetResolver

    try:
        cfg = compose(overrides=[f"+{config.group}={config.option}"])
        TargetResolver(plugins).resolve(cfg)
    except Exception as error:  # each file's first problem, then the next file
        found = translate(error)
        message = str(found) if isinstance(found, ConfigError) else one_line(found)
        head, _, rest = message.partition(": ")
        key = head.split(" (from ")[0]  # the file is this one
        has_key = bool(rest) and " " not in key
        report.problem(config.shown, key if has_key else f"{config.group}={config.option}",
                       rest if has_key else message)
        return None
    report.checked.append(f"{config.shown} composes; its targets resolve")
    return cfg


def _as_array(value: Any) -> Any:
    """A loader's result (a tensor or an array-like) as a numpy array."""
    import numpy as np
    import torch

    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def row_frame_disagreement(loader: Any, frame: Any) -> str | None:
    """Where ``loader(row)`` and ``loader.load_frame(frame)[i]`` differ; None when they agree."""
    import numpy as np

    whole = _as_array(loader.load_frame(frame))
    if len(whole) != len(frame):
        return f"load_frame gives {len(whole)} items for {len(frame)} rows"
    for position, record in enumerate(frame.to_dict("records")):
        one = _as_array(loader(record))
        if one.shape != whole[position].shape or not np.allclose(one, whole[position], equal_nan=True):
            return (f"row {position}: __call__ gives shape {one.shape} {one.ravel()[:3]}..., "
                    f"load_frame gives shape {whole[position].shape} {whole[position].ravel()[:3]}...")
    return None


def _compare(report: Report, file: str, key: str, loader: Any, frame: Any) -> None:
    if not callable(getattr(loader, "load_frame", None)):
        report.notes.append(f"{file}: {key}: per row only (no load_frame); nothing to compare")
        return
    try:
        why = row_frame_disagreement(loader, frame)
    except Exception as error:  # the synthetic manifest may not be the data it reads
        report.notes.append(f"{file}: {key}: not compared on the synthetic manifest: {one_line(error)}")
        return
    if why is None:
        report.checked.append(f"{file}: {key}: rows and load_frame agree")
    else:
        report.problem(file, key, why)


def _check_configured_loaders(report: Report, data: list[tuple[PackagedConfig, DictConfig]],
                              frame: Any) -> set[str]:
    """Compare the loaders the data configs build; return their targets."""
    from serotiny_core.assembly import instantiate

    configured = set()
    for config, cfg in data:
        for key, node in (cfg.data.get("loaders") or {}).items():
            if not (isinstance(node, DictConfig) and "_target_" in node):
                continue
            configured.add(node._target_)
            try:
                loader = instantiate(node)
            except Exception as error:  # a packaged config that does not build is the problem
                report.problem(config.shown, f"data.loaders.{key}", f"does not build: {one_line(error)}")
                continue
            _compare(report, config.shown, f"data.loaders.{key}", loader, frame)
    return configured


def _check_bare_loader(report: Report, hooks_file: str, component: Component, frame: Any) -> None:
    """A loader no data config uses, built without arguments where it can be."""
    from serotiny_core.imports import import_object

    try:
        factory = import_object(component.target)
    except Exception:  # a target that does not import is a problem reported already
        return
    try:
        loader = factory()
    except Exception as error:  # it needs arguments, or the synthetic setting does not suit it
        report.notes.append(f"{hooks_file}: loader {component.name!r}: no packaged data config "
                            f"gives its arguments, so it was not compared ({one_line(error)})")
        return
    _compare(report, hooks_file, f"loader {component.name!r}", loader, frame)


def _check_loaders(report: Report, hooks_file: str, components: list[Component],
                   data: list[tuple[PackagedConfig, DictConfig]], frame: Any) -> None:
    configured = _check_configured_loaders(report, data, frame)
    for component in components:
        if component.kind == "loader" and component.target not in configured:
            _check_bare_loader(report, hooks_file, component, frame)


def _trainer_class(model: Any) -> Any:
    """The Trainer of the Lightning namespace the model belongs to."""
    for namespace in ("lightning.pytorch", "pytorch_lightning"):
        module = sys.modules.get(namespace)
        if module is not None and isinstance(model, module.LightningModule):
            return module.Trainer
    import pytorch_lightning

    return pytorch_lightning.Trainer


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's banners and warnings would bury the report (and break --json)."""
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _one_batch(model_cfg: DictConfig, data_cfg: DictConfig, folder: Path) -> None:
    from serotiny_core.assembly import instantiate

    datamodule, model = instantiate(data_cfg), instantiate(model_cfg)
    trainer = _trainer_class(model)(
        fast_dev_run=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(folder))
    trainer.fit(model, datamodule=datamodule)


def _try_model(config: PackagedConfig, cfg: DictConfig,
               data: list[tuple[PackagedConfig, DictConfig]], folder: Path) -> tuple[bool, list[str], list[str]]:
    """Train one batch on each data config until one works: (worked, model failures, data lacking)."""
    failures, lacking = [], []
    for data_config, data_cfg in data:
        try:
            with _quiet():
                _one_batch(cfg.model, data_cfg.data, folder)
        except (DataError, OSError) as error:  # the synthetic manifest is not data this config reads
            lacking.append(f"data={data_config.option}: {one_line(error)}")
        except Exception as error:  # the model does not train on data its plugin describes
            failures.append(f"with data={data_config.option}: {one_line(error)}")
        else:
            return True, failures, lacking
    return False, failures, lacking


def _check_models(report: Report, models: list[tuple[PackagedConfig, DictConfig]],
                  data: list[tuple[PackagedConfig, DictConfig]], folder: Path) -> None:
    for config, cfg in models:
        worked, failures, lacking = _try_model(config, cfg, data, folder)
        if worked:
            report.checked.append(f"{config.shown}: one batch (fast_dev_run) trains")
        elif failures:
            report.problem(config.shown, "fast_dev_run", "; ".join(failures))
        else:
            lacks = "; ".join(lacking) or "the plugin packages no data/ config describing its input"
            report.notes.append(f"{config.shown}: not run: {lacks}")


def check_configs(report: Report, plugin: str, plugins: Plugins, components: list[Component],
                  configs: list[PackagedConfig], sources: list[str], hooks_file: str) -> None:
    """Compose every packaged YAML file, then compare loaders and train one batch per model."""
    import pandas as pd

    composed: dict[str, list[tuple[PackagedConfig, DictConfig]]] = {"model": [], "data": []}
    with _synthetic_project() as folder, _composing(plugin, plugins, sources, folder / "config"):
        for config in configs:
            if config.group in ("", ".") or config.group.startswith("hydra"):
                report.notes.append(f"{config.shown}: a primary or hydra config; not composed alone")
                continue
            cfg = _compose(report, config, plugins)
            if cfg is not None and config.group in composed:
                composed[config.group].append((config, cfg))
        frame = pd.read_csv(folder / "data" / "manifest.csv").head(COMPARED_ROWS)
        _check_loaders(report, hooks_file, components, composed["data"], frame)
        _check_models(report, composed["model"], composed["data"], folder)
