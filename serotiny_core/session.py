"""The MLflow side of one command, as a context manager.

A session connects to the command's MLflow process as soon as the config is
composed (:meth:`Session.connect`: the process the command started before
composing, or a new one), so MLflow loads while the command builds its
model and data; then it opens (or reopens, to resume) one run (test and
predict of a train run: a child run of it, the train run only read),
hands Lightning a logger bound to it, and ends it exactly once: FINISHED,
FAILED (with the error as a tag) or KILLED (Ctrl-C, SIGTERM), uploading
checkpoints first so nothing already written is lost. With tracking off,
or on a DDP rank other than 0, a session is inert.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import zipfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from omegaconf import DictConfig, OmegaConf, open_dict

from serotiny_core import interrupts, lightning_ns, sweep
from serotiny_core.checkpoint_info import checkpoint_epoch
from serotiny_core.errors import ConfigError, Interrupted, one_line
from serotiny_core.job import CommandContext, Job, global_rank, override_key
from serotiny_core.redact import recordable
from serotiny_core.tracking import (MODE_TAG, TrackingProcess, TrackingSettings, embedded_store,
                                    fluent, pin, run_tags)

log = logging.getLogger("serotiny")
CHECKPOINT_DIR_TAG = "serotiny.checkpoint_dir"
BEST_CHECKPOINT_TAG = "serotiny.best_checkpoint"
LAST_CHECKPOINT_TAG = "serotiny.last_checkpoint"
# What rank 0 of a DDP test/predict chose (model, data, checkpoint), for the ranks Lightning starts.
SHARED_CHECKPOINT_ENV = "SEROTINY_DDP_CHECKPOINT"


def names_a_run(cfg: DictConfig) -> bool:
    """Whether ``mlflow.run_name`` names one run: set, and not stamped with the time.

    The packaged default (``...-${now:%Y%m%d-%H%M%S}``) names a new run on
    every command, so test/predict take it as no name at all.
    """
    node = cfg.get("mlflow")
    if not isinstance(node, DictConfig):
        return False
    raw = OmegaConf.to_container(node, resolve=False).get("run_name")
    return bool(raw) and "${now:" not in str(raw)


def tracking_settings(cfg: DictConfig, context: CommandContext, job: Job) -> TrackingSettings | None:
    """The ``mlflow`` group; the embedded SQLite store when a config has none."""
    root = context.project.root
    node = cfg.get("mlflow") if "mlflow" in cfg else OmegaConf.create(embedded_store(root))
    settings = TrackingSettings.from_config(node, default_experiment=root.name)
    if settings is not None and job.multirun and settings.run_name and not settings.run_id:
        settings.run_name = f"{settings.run_name}-{job.num}"  # one run per job, even unswept names
    return settings


@dataclass(frozen=True)
class Resumed:
    """What resuming found: the checkpoint to train from (None: from scratch), whether the
    run is done already, and then the metrics it recorded (a sweep's finished job)."""

    checkpoint: str | None
    done: bool = False
    metrics: Mapping[str, float] | None = None


class Session:
    """One command's MLflow run, or nothing when tracking is off."""

    def __init__(self, tracker: TrackingProcess | None, job: Job, context: CommandContext) -> None:
        self.tracker = tracker
        self.job = job
        self.context = context
        self.trainer: Any = None

    @property
    def run_id(self) -> str | None:
        return self.tracker.run_id if self.tracker else None

    @classmethod
    @contextlib.contextmanager
    def connect(cls, cfg: DictConfig, context: CommandContext, job: Job) -> Iterator["Session"]:
        """Start the MLflow process (no run yet); it is gone when the block ends."""
        interrupts.check()  # a sweep stopped by Ctrl-C starts no further job
        settings = tracking_settings(cfg, context, job)
        tracker = TrackingProcess(settings) if settings is not None and global_rank() == 0 else None
        try:
            yield cls(tracker, job, context)
        finally:
            if tracker is not None:
                tracker.close()

    @contextlib.contextmanager
    def open_run(self, cfg: DictConfig) -> Iterator["Session"]:
        """The MLflow run, open for the block and ended by how the block ends."""
        if self.tracker is not None:
            self._open(cfg)
        with interrupts.caught():
            try:
                yield self
                interrupts.check()  # a Ctrl-C swallowed on the way still ends the job as one
            except (KeyboardInterrupt, SystemExit) as stop:
                self._interrupted(stop)
            except BaseException as error:
                if interrupts.requested():  # e.g. DataLoader workers that the Ctrl-C ended
                    self._interrupted(error)
                self._end("FAILED", error)
                raise
        self._end("FINISHED")

    def _interrupted(self, cause: BaseException) -> None:
        self._end("KILLED")
        raise Interrupted(f"{self.context.mode} interrupted; {self._kept()}",
                          hint="run the same command again to resume") from cause

    def _open(self, cfg: DictConfig) -> None:
        """train opens (or resumes) its run; test/predict open a run of their own.

        By run, that is a child of the train run, which is only read; its
        config is logged once the run's model and data are known.
        """
        assert self.tracker is not None
        mode = self.context.mode
        by_run = mode != "train" and not cfg.get("ckpt_path")
        tags = run_tags(self.context.argv, self.context.plugins, self.job.output_dir)
        tags[MODE_TAG] = mode
        if mode == "train":  # a resumed run's checkpoint tags move when it writes one (_end)
            self._open_train(tags)
            if self.tracker.state().read_only:  # a sweep's finished job: nothing to write
                return
        elif by_run:
            self.tracker.open_child(tags, mode, names_a_run(cfg))
        else:
            self.tracker.create(tags)
        self.tracker.log_context(self.context.project.root)
        if by_run:
            self.tracker.state()  # no such run: one error line, before anything is built
            self._attach_fluent()
            return
        self.tracker.log_config(recordable(cfg), f"{mode}.yaml")
        self._log_manifest(cfg.get("data"))
        self._attach_fluent()
        if self.tracker.resumed:
            name = self.tracker.previous_tags.get("mlflow.runName", self.tracker.settings.run_name)
            log.info("continuing MLflow run %s (%s)", name or "", self.tracker.run_id)

    def _open_train(self, tags: dict[str, str]) -> None:
        """A sweep's job: its child run of the sweep's parent, found by its overrides; otherwise
        the run of this name (resumed) or a new one."""
        assert self.tracker is not None
        new_run = {CHECKPOINT_DIR_TAG: str(self.job.output_dir / "checkpoints")}
        parent = sweep.parent_id() if self.job.multirun else None
        if parent is None or self.tracker.settings.run_id:
            self.tracker.open(tags, new_run)
            return
        new_run[sweep.JOB_NUM_TAG] = str(self.job.num)
        self.tracker.open_tagged(tags, sweep.child_tags(parent, self.job.overrides), new_run)

    def _attach_fluent(self) -> None:
        """``mlflow.*`` calls of the job's own code go to this run."""
        tracker = self.tracker
        assert tracker is not None
        tracker.settings.use_credentials()  # as in the MLflow process; the job's env is restored after it
        fluent.attach(tracker.settings.tracking_uri,
                      lambda: (tracker.state().experiment_id, tracker.state().run_id))

    def _log_manifest(self, data: Any) -> None:
        """The manifest the job reads, as the run's dataset input."""
        manifest = data.get("path") if isinstance(data, DictConfig) else None
        if self.tracker is not None and isinstance(manifest, str):
            self.tracker.log_manifest(Path(manifest), self.context.mode)

    def loggers(self) -> list[Any]:
        return [self.tracker.logger()] if self.tracker else []

    def watch(self, trainer: Any) -> None:
        """Remember the trainer, whose checkpoints are uploaded when the run ends."""
        self.trainer = trainer

    def log_model_summary(self, model: Any) -> None:
        """Lightning's summary of the model (layers, parameter counts) as ``model_summary.txt``."""
        namespace = lightning_ns.namespace_of(model)
        if self.tracker is None or namespace is None:
            return
        summary = lightning_ns.attribute(namespace, "utilities.model_summary.ModelSummary")
        self.tracker.log_text(str(summary(model, max_depth=-1)), "model_summary.txt")

    def log_artifact(self, path: Path, folder: str) -> None:
        if self.tracker:
            self.tracker.log_artifact(path, folder)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.tracker:
            self.tracker.set_tags(tags)

    # -- resuming and reusing a run's checkpoint -------------------------------------------

    def _local_checkpoint(self, name: str) -> Path | None:
        """Where the run's train command left checkpoint ``name``, if it is still there.

        The exact file the run wrote when it says which (tags set at its end), so
        a folder another run also wrote to never hands over that run's file.
        """
        assert self.tracker is not None
        tags = self.tracker.previous_tags
        folder = tags.get(CHECKPOINT_DIR_TAG)
        exact = tags.get(BEST_CHECKPOINT_TAG if name == "best.ckpt" else LAST_CHECKPOINT_TAG)
        path = exact or (name == "last.ckpt" and folder and f"{folder}/{name}")
        return Path(path) if path and Path(path).is_file() else None

    def _copies(self, name: str) -> Iterator[Path | None]:
        """The run's checkpoint ``name``: the local file, then (only if needed) its artifact."""
        assert self.tracker is not None
        yield self._local_checkpoint(name)
        yield self.tracker.download(f"checkpoints/{name}", self.job.output_dir / "restored")

    def _run_checkpoint(self, names: tuple[str, ...]) -> Path | None:
        """The run's first readable checkpoint of ``names``, from local disk or else its artifacts."""
        unreadable: list[Path] = []
        for name in names:
            for found in filter(None, self._copies(name)):
                reason = unreadable_reason(found)
                if reason is None:
                    return found
                log.warning("checkpoint %s is unreadable (%s); trying the run's other copy",
                            found, reason)
                unreadable.append(found)
        if unreadable:
            check_checkpoint(unreadable[-1])
        return None

    def resume_checkpoint(self, cfg: DictConfig) -> Resumed:
        """Where train starts: ``ckpt_path``, or the last checkpoint of the run it reopened
        (none: from scratch); and whether that run is done already (nothing to train)."""
        state = self.tracker.state() if self.tracker is not None else None
        if state is not None and state.read_only:
            log.info("sweep job %d finished already in MLflow run %s: skipped "
                     "(fresh_sweep=true runs the sweep afresh)", self.job.num, state.run_id)
            return Resumed(None, done=True, metrics=state.metrics)
        if cfg.get("ckpt_path"):
            return Resumed(str(cfg.ckpt_path))
        if state is None or not state.resumed:
            return Resumed(None)
        ckpt = self._run_checkpoint(("last.ckpt",))
        if ckpt is None:
            log.warning("MLflow run %s has no checkpoint to resume from; training from scratch",
                        state.run_id)
            return Resumed(None)
        done, max_epochs = completed_epochs(ckpt), cfg.trainer.get("max_epochs")
        if max_epochs is not None and max_epochs >= 0 and done >= max_epochs:
            log.info("run %r already trained %d of max_epochs=%d epochs; nothing to do "
                     "(raise trainer.max_epochs to train further)",
                     self.tracker.settings.run_name, done, max_epochs)
            return Resumed(str(ckpt), done=True)
        log.info("resuming from %s (%d epochs done)", ckpt, done)
        return Resumed(str(ckpt))

    def model_and_checkpoint(self, cfg: DictConfig) -> tuple[DictConfig, DictConfig, str]:
        """For test/predict: the model, data and checkpoint to use.

        ``ckpt_path`` with this config's model and data; or a train run's
        checkpoint and model, with the run's data and the ``data`` keys this
        command line sets. Rank 0 leaves its choice for the other DDP ranks.
        """
        shared = os.environ.get(SHARED_CHECKPOINT_ENV)
        if shared and global_rank() != 0:
            chosen = json.loads(shared)
            return OmegaConf.create(chosen["model"]), OmegaConf.create(chosen["data"]), chosen["ckpt"]
        if cfg.get("ckpt_path"):
            check_checkpoint(Path(cfg.ckpt_path))
            model, data, ckpt = cfg.model, cfg.data, str(cfg.ckpt_path)
        else:
            model, data, ckpt = self._from_run(cfg)
        os.environ[SHARED_CHECKPOINT_ENV] = json.dumps(
            {"model": OmegaConf.to_container(model, resolve=True),
             "data": OmegaConf.to_container(data, resolve=True), "ckpt": ckpt})
        return model, data, ckpt

    def _from_run(self, cfg: DictConfig) -> tuple[DictConfig, DictConfig, str]:
        if self.tracker is None:
            raise ConfigError(f"serotiny {self.context.mode} needs a checkpoint",
                              hint="pass ckpt_path=PATH, or mlflow.run_name=NAME (or mlflow.run_id=ID) "
                                   "of a train run with tracking on")
        logged = self.tracker.download("config/train.yaml", self.job.output_dir / "restored")
        ckpt = self._run_checkpoint(("best.ckpt", "last.ckpt"))
        if logged is None or ckpt is None:
            raise ConfigError(f"MLflow run {self.tracker.source_run_id} has no "
                              f"{'config/train.yaml' if logged is None else 'checkpoint'} artifact",
                              hint="pass ckpt_path=PATH, or pick a run made by 'serotiny train'")
        trained = OmegaConf.load(logged)
        data = run_data(cfg, trained.data, self.job.overrides)
        used = cfg.copy()
        with open_dict(used):
            used.model, used.data = trained.model, data
        self.tracker.log_config(recordable(used), f"{self.context.mode}.yaml")
        self._log_manifest(data)
        return trained.model, data, str(ckpt)

    # -- ending the run --------------------------------------------------------------------

    def _kept(self) -> str:
        checkpoint = getattr(self.trainer, "checkpoint_callback", None)
        last = getattr(checkpoint, "last_model_path", "") if checkpoint else ""
        return f"last checkpoint: {last}" if last else "no checkpoint was written yet"

    def _recorded_best(self, checkpoint: Any) -> str:
        """The best checkpoint this run records (test/predict take it before the last), or ''."""
        assert self.tracker is not None
        if self.tracker.settings.log_checkpoints in ("last", "best", "all") and checkpoint.monitor:
            return checkpoint.best_model_path or ""
        return ""

    def log_model(self, cfg: DictConfig, model: Any, datamodule: Any) -> None:
        """The run as an MLflow model, from the checkpoint predict would take (best, else last).

        Its example predictions are made here, where torch is loaded; the
        MLflow process writes, logs and registers the model folder.
        """
        checkpoint = getattr(self.trainer, "checkpoint_callback", None)
        if self.tracker is None or not self.tracker.settings.log_model or checkpoint is None:
            return
        from serotiny_core import served

        config = {key: recordable(cfg)[key] for key in ("model", "data")}
        ckpt = self._recorded_best(checkpoint) or checkpoint.last_model_path
        problem = served.unwrappable(model, datamodule, config["data"]) or ("" if ckpt else "no checkpoint")
        try:
            example = None if problem else datamodule.frame("predict").head(served.EXAMPLE_ROWS)
            output = None if problem else served.predict_rows(config, ckpt, example)
        except Exception as error:  # the run is done and kept; only its model is missing
            problem = f"predicting its example rows failed: {one_line(error)}"
        if problem:
            log.warning("the run's MLflow model is skipped: %s (mlflow.log_model=false turns it off)",
                        problem)
            return
        pins = [pin(info) for info in self.context.plugins.loaded]
        self.tracker.log_model(served.ModelSpec(
            config, ckpt, example.reset_index(drop=True), output, served.requirements(pins),
            self.tracker.settings.registered_model_name))

    def _upload_checkpoints(self) -> None:
        checkpoint = getattr(self.trainer, "checkpoint_callback", None)
        if checkpoint is None or self.tracker is None:
            return
        if checkpoint.last_model_path:  # this run's own file: test/predict/resume take this one
            self.tracker.set_tags({CHECKPOINT_DIR_TAG: str(Path(checkpoint.last_model_path).parent),
                                   LAST_CHECKPOINT_TAG: checkpoint.last_model_path})
        mode = self.tracker.settings.log_checkpoints
        chosen: dict[str, str] = {}
        if mode in ("last", "all") and checkpoint.last_model_path:
            chosen["last.ckpt"] = checkpoint.last_model_path
        best = self._recorded_best(checkpoint)
        if best:
            chosen["best.ckpt"] = best
            self.tracker.set_tags({BEST_CHECKPOINT_TAG: best})
        if mode == "all" and checkpoint.dirpath:
            chosen.update({p.name: str(p) for p in Path(checkpoint.dirpath).glob("*.ckpt")})
        for name, path in chosen.items():
            self.tracker.upload_as(Path(path), "checkpoints", name)

    def _end(self, status: str, error: BaseException | None = None) -> None:
        """End the run; a resumed run that failed before training is left as it was."""
        if self.tracker is None:
            return
        if self.trainer is not None:
            self._upload_checkpoints()
        fluent.detach(status)
        if self.trainer is None and status != "FINISHED" and self.tracker.resumed:
            self.tracker.restore()
            return
        self.tracker.end(status, None if error is None else f"{type(error).__name__}: {error}")


def run_data(cfg: DictConfig, trained: DictConfig, overrides: tuple[str, ...]) -> DictConfig:
    """The data a train run used, with the ``data.*`` keys of this command line.

    Choosing another data option (``data=other``) takes this config's data whole.
    """
    keys = [(override, override_key(override)) for override in overrides]
    if any(key == "data" or key.startswith("data/") for _, key in keys):
        return cfg.data
    merged = OmegaConf.create({"data": trained})
    for override, key in keys:
        if key.startswith("data.") and not override.startswith("~"):
            OmegaConf.update(merged, key, OmegaConf.select(cfg, key), force_add=True)
    return merged.data


def unreadable_reason(ckpt: Path) -> str | None:
    """Why ``ckpt`` cannot be a checkpoint, or None.

    ``torch.save`` writes a zip archive whose index is at its end, so a
    truncated or overwritten file has none; this reads only that index.
    """
    try:
        with zipfile.ZipFile(ckpt) as archive:
            archive.namelist()
    except zipfile.BadZipFile:
        return "truncated, or not a checkpoint torch.save wrote"
    except OSError as error:
        return error.strerror or str(error)
    return None


def check_checkpoint(ckpt: Path) -> None:
    """One error line naming ``ckpt`` when it exists but cannot be read (a missing file is
    reported by Lightning's loader, with the path)."""
    reason = unreadable_reason(ckpt) if ckpt.is_file() else None
    if reason is not None:
        raise ConfigError(f"checkpoint {ckpt} is unreadable: {reason}",
                          hint="point ckpt_path at an intact checkpoint, or restore this file "
                               "(a run's uploaded copy is under its artifacts, checkpoints/)")


def completed_epochs(ckpt: Path) -> int:
    """How many epochs a Lightning checkpoint has finished.

    serotiny's checkpoints are written at the end of an epoch, when the
    checkpoint's ``epoch`` is still that epoch's (0-based) index. Read
    without unpickling any code: the checkpoint may come from anywhere.
    """
    return checkpoint_epoch(ckpt) + 1
