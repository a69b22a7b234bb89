"""The MLflow side of one command, as a context manager.

A session connects to the command's MLflow process as soon as the config is
composed (:meth:`Session.connect`: the process the command started before
composing, or a new one), so MLflow loads while the command builds its
model and data; then it opens (or reopens, to resume) one run,
hands Lightning a logger bound to it, and ends it exactly once: FINISHED,
FAILED (with the error as a tag) or KILLED (Ctrl-C, SIGTERM), uploading
checkpoints first so nothing already written is lost. With tracking off,
or on a DDP rank other than 0, a session is inert.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from serotiny_core import interrupts
from serotiny_core.checkpoint_info import checkpoint_epoch
from serotiny_core.errors import ConfigError, Interrupted
from serotiny_core.hydra_app import RunContext
from serotiny_core.job import Job, global_rank
from serotiny_core.tracking import TrackingSettings, embedded_store, run_tags
from serotiny_core.tracking_process import TrackingProcess, discard_spare

log = logging.getLogger("serotiny")
CHECKPOINT_DIR_TAG = "serotiny.checkpoint_dir"
BEST_CHECKPOINT_TAG = "serotiny.best_checkpoint"


def tracking_settings(cfg: DictConfig, context: RunContext, job: Job) -> TrackingSettings | None:
    """The ``mlflow`` group; the embedded SQLite store when a config has none."""
    root = context.project.root
    node = cfg.get("mlflow") if "mlflow" in cfg else OmegaConf.create(embedded_store(root))
    settings = TrackingSettings.from_config(node, default_experiment=root.name)
    if settings is not None and job.multirun and settings.run_name and not settings.run_id:
        settings.run_name = f"{settings.run_name}-{job.num}"  # one run per job, even unswept names
    return settings


class Session:
    """One command's MLflow run, or nothing when tracking is off."""

    def __init__(self, tracker: TrackingProcess | None, job: Job, context: RunContext) -> None:
        self.tracker = tracker
        self.job = job
        self.context = context
        self.trainer: Any = None
        self.finished_already = False

    @property
    def run_id(self) -> str | None:
        return self.tracker.run_id if self.tracker else None

    @classmethod
    @contextlib.contextmanager
    def connect(cls, cfg: DictConfig, context: RunContext, job: Job) -> Iterator["Session"]:
        """Start the MLflow process (no run yet); it is gone when the block ends."""
        interrupts.check()  # a sweep stopped by Ctrl-C starts no further job
        settings = tracking_settings(cfg, context, job)
        tracker = TrackingProcess(settings) if settings is not None and global_rank() == 0 else None
        if tracker is None:
            discard_spare()
        try:
            yield cls(tracker, job, context)
        finally:
            if tracker is not None:
                tracker.close()

    @contextlib.contextmanager
    def run(self, cfg: DictConfig) -> Iterator["Session"]:
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
        assert self.tracker is not None
        tags = run_tags(self.context.argv, self.context.plugins, self.context.project.root,
                        self.job.output_dir)
        if self.context.mode == "train":
            tags[CHECKPOINT_DIR_TAG] = str(self.job.output_dir / "checkpoints")
        if self.context.mode != "train" and not cfg.get("ckpt_path"):
            self.tracker.open_existing()  # test/predict by run: the train run keeps its tags
        else:
            self.tracker.open(tags)
        self.tracker.log_config(cfg, f"{self.context.mode}.yaml")
        if self.tracker.resumed:
            log.info("continuing MLflow run %s (%s)", self.tracker.settings.run_name or "",
                     self.tracker.run_id)

    def loggers(self) -> list[Any]:
        return [self.tracker.logger()] if self.tracker else []

    def watch(self, trainer: Any) -> None:
        """Remember the trainer, whose checkpoints are uploaded when the run ends."""
        self.trainer = trainer

    def log_artifact(self, path: Path, folder: str) -> None:
        if self.tracker:
            self.tracker.log_artifact(path, folder)

    # -- resuming and reusing a run's checkpoint -------------------------------------------

    def _local_checkpoint(self, name: str) -> Path | None:
        """Where the run's train command left checkpoint ``name``, if it is still there."""
        assert self.tracker is not None
        tags = self.tracker.previous_tags
        folder = tags.get(CHECKPOINT_DIR_TAG)
        path = tags.get(BEST_CHECKPOINT_TAG) if name == "best.ckpt" else folder and f"{folder}/{name}"
        return Path(path) if path and Path(path).is_file() else None

    def _run_checkpoint(self, names: tuple[str, ...]) -> Path | None:
        """The run's first checkpoint of ``names``, from local disk or else its artifacts."""
        assert self.tracker is not None
        for name in names:
            found = self._local_checkpoint(name) or self.tracker.download(
                f"checkpoints/{name}", self.job.output_dir / "restored")
            if found is not None:
                return found
        return None

    def resume_checkpoint(self, cfg: DictConfig) -> str | None:
        """When this run_name already ran: its last checkpoint (or None to start afresh)."""
        if self.tracker is None or not self.tracker.resumed:
            return None
        ckpt = self._run_checkpoint(("last.ckpt",))
        if ckpt is None:
            log.warning("MLflow run %s has no checkpoint to resume from; training from scratch",
                        self.tracker.run_id)
            return None
        done, max_epochs = completed_epochs(ckpt), cfg.trainer.get("max_epochs")
        if max_epochs is not None and max_epochs >= 0 and done >= max_epochs:
            log.info("run %r already trained %d of max_epochs=%d epochs; nothing to do "
                     "(raise trainer.max_epochs to train further)",
                     self.tracker.settings.run_name, done, max_epochs)
            self.finished_already = True
        else:
            log.info("resuming from %s (%d epochs done)", ckpt, done)
        return str(ckpt)

    def model_and_checkpoint(self, cfg: DictConfig) -> tuple[DictConfig, str]:
        """For test/predict: ``ckpt_path`` with the config's model, or a run's own."""
        if cfg.get("ckpt_path"):
            return cfg.model, str(cfg.ckpt_path)
        if self.tracker is None:
            raise ConfigError(f"serotiny {self.context.mode} needs a checkpoint",
                              hint="pass ckpt_path=PATH, or mlflow.run_name=NAME (or mlflow.run_id=ID) "
                                   "of a train run with tracking on")
        logged = self.tracker.download("config/train.yaml", self.job.output_dir / "restored")
        ckpt = self._run_checkpoint(("best.ckpt", "last.ckpt"))
        if logged is None or ckpt is None:
            raise ConfigError(f"MLflow run {self.tracker.run_id} has no "
                              f"{'config/train.yaml' if logged is None else 'checkpoint'} artifact",
                              hint="pass ckpt_path=PATH, or pick a run made by 'serotiny train'")
        return OmegaConf.load(logged).model, str(ckpt)

    # -- ending the run --------------------------------------------------------------------

    def _kept(self) -> str:
        checkpoint = getattr(self.trainer, "checkpoint_callback", None)
        last = getattr(checkpoint, "last_model_path", "") if checkpoint else ""
        return f"last checkpoint: {last}" if last else "no checkpoint was written yet"

    def _upload_checkpoints(self) -> None:
        checkpoint = getattr(self.trainer, "checkpoint_callback", None)
        mode = self.tracker.settings.log_checkpoints if self.tracker else False
        if checkpoint is None or not mode:
            return
        chosen: dict[str, str] = {}
        if mode in ("last", "all") and checkpoint.last_model_path:
            chosen["last.ckpt"] = checkpoint.last_model_path
        if mode in ("last", "best", "all") and checkpoint.monitor and checkpoint.best_model_path:
            chosen["best.ckpt"] = checkpoint.best_model_path
            self.tracker.set_tags({BEST_CHECKPOINT_TAG: checkpoint.best_model_path})
        if mode == "all" and checkpoint.dirpath:
            chosen.update({p.name: str(p) for p in Path(checkpoint.dirpath).glob("*.ckpt")})
        for name, path in chosen.items():
            self.tracker.upload_as(Path(path), "checkpoints", name)

    def _end(self, status: str, error: BaseException | None = None) -> None:
        if self.tracker is None:
            return
        if self.trainer is not None:
            self._upload_checkpoints()
        self.tracker.end(status, error)


def completed_epochs(ckpt: Path) -> int:
    """How many epochs a Lightning checkpoint has finished.

    serotiny's checkpoints are written at the end of an epoch, when the
    checkpoint's ``epoch`` is still that epoch's (0-based) index. Read
    without unpickling any code: the checkpoint may come from anywhere.
    """
    return checkpoint_epoch(ckpt) + 1
