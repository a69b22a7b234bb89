"""What Hydra knows about the current job: its folder, number and overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    """The running Hydra job, read once from HydraConfig."""

    output_dir: Path
    num: int
    overrides: tuple[str, ...]
    multirun: bool
    config_name: str

    @classmethod
    def current(cls) -> "Job":
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
        return cls(output_dir=Path(hydra.runtime.output_dir),
                   num=int(hydra.job.get("num", 0) or 0),
                   overrides=tuple(hydra.overrides.task),
                   multirun=hydra.mode == RunMode.MULTIRUN,
                   config_name=str(hydra.job.config_name))


def global_rank() -> int:
    """The process's rank under DDP (0 when not distributed), known before Lightning starts."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0
