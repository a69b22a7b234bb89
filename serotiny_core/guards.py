"""Callbacks that turn the first failures of a fit into clear messages."""

from __future__ import annotations

from typing import Any, Mapping

from serotiny_core import interrupts


def describe_batch(batch: Any) -> str:
    """``x: [64, 100] float32, y: [64, 1] float32``: what a model was fed."""
    if isinstance(batch, Mapping):
        return ", ".join(f"{key}: {describe_batch(value)}" for key, value in batch.items())
    if isinstance(batch, (list, tuple)):
        return "(" + ", ".join(describe_batch(item) for item in batch) + ")"
    shape = getattr(batch, "shape", None)
    if shape is not None:
        return f"{list(shape)} {str(getattr(batch, 'dtype', '')).replace('torch.', '')}".strip()
    return type(batch).__name__


class FirstBatchRecorder:
    """Remembers the shapes of the batches seen before the first optimizer step.

    When the model fails on its very first batch (a shape mismatch between
    data and model, most often), the runner names each batch key's shape
    beside the model's error instead of a deep traceback. A Lightning
    Callback once the trainer is built (see :func:`serotiny_core.lightning_ns.adopt`).
    """

    def __init__(self) -> None:
        self.shapes: str | None = None

    def _record(self, trainer: Any, batch: Any) -> None:
        if trainer.global_step == 0:
            self.shapes = describe_batch(batch)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._record(trainer, batch)

    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        self._record(trainer, batch)


class StopOnSignal:
    """Stops the fit at the next batch after a Ctrl-C or SIGTERM that was swallowed
    (see :mod:`serotiny_core.interrupts`), instead of training to the end. A Lightning
    Callback once the trainer is built (see :func:`serotiny_core.lightning_ns.adopt`)."""

    def on_train_batch_start(self, *args: Any, **kwargs: Any) -> None:
        interrupts.check()

    def on_validation_batch_start(self, *args: Any, **kwargs: Any) -> None:
        interrupts.check()

    def on_test_batch_start(self, *args: Any, **kwargs: Any) -> None:
        interrupts.check()

    def on_predict_batch_start(self, *args: Any, **kwargs: Any) -> None:
        interrupts.check()
