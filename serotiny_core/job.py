"""What a job knows about itself: its command, project and plugins
(:class:`CommandContext`), and what Hydra says of it: its folder, number and
overrides (:class:`Job`).

Also what the processes of a DDP job's other ranks need to know: whether
they are rank 0 (:func:`global_rank`) and which job to run
(:func:`share_with_ranks`, :func:`rank_overrides`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from serotiny_core.plugins import Plugins
from serotiny_core.project import Project
from serotiny_core.redact import redact_text


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
                   overrides=tuple(redact_text(o) for o in hydra.overrides.task),
                   multirun=hydra.mode == RunMode.MULTIRUN,
                   config_name=str(hydra.job.config_name))


@dataclass
class CommandContext:
    """What a job needs besides its config: the command it serves and where it runs.

    It lives here, below the modules that use it (the Hydra entry, the
    runner, the session, the assembly), so that none of them imports another
    one above it just for this record.
    """

    mode: str
    project: Project
    plugins: Plugins
    strict: bool = False
    argv: list[str] = field(default_factory=list)

    @property
    def weights_only(self) -> bool | None:
        """Under --strict checkpoints load as plain tensors; otherwise Lightning decides."""
        return True if self.strict else None


# Set by torchrun (RANK), SLURM (SLURM_PROCID), Lightning's launcher for the ranks it
# starts (LOCAL_RANK, NODE_RANK) and torchrun/elastic (GROUP_RANK, the node).
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK")


def global_rank() -> int:
    """0 on the process that is global rank 0 under DDP (and outside DDP); positive elsewhere.

    Read from the environment because the MLflow session opens before the
    Trainer exists. ``RANK`` is exact where set. Otherwise any non-zero rank
    variable means another rank: a process Lightning starts for a local rank
    inherits its parent's ``SLURM_PROCID`` (0) but gets ``LOCAL_RANK`` >= 1, and
    the first process on node N > 0 has only ``NODE_RANK`` = N; the largest
    one is returned, which is non-zero exactly when the process is not rank 0.
    """
    if os.environ.get("RANK", "").isdigit():
        return int(os.environ["RANK"])
    values = [int(os.environ[key]) for key in RANK_VARIABLES if os.environ.get(key, "").isdigit()]
    return max(values, default=0)


SHARED_JOB_ENV = "SEROTINY_DDP_JOB"
# Hydra settings a rank other than 0 sets for itself (see rank_overrides); a rank
# Lightning started also sets its mode and folder rather than take rank 0's.
RANK_OWN_KEYS = ("hydra.output_subdir", "hydra/job_logging")
RANK_OWN_OVERRIDES = ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
NOT_SHARED_KEYS = ("hydra.mode", "hydra.run.dir", *RANK_OWN_KEYS)


def override_key(override: str) -> str:
    """``++a.b=1`` -> ``a.b``; ``hydra/launcher=joblib`` -> ``hydra/launcher``."""
    return override.lstrip("+~").split("=", 1)[0]


def share_with_ranks() -> None:
    """Put the current job's overrides and folder in the environment, for its other ranks.

    Lightning starts a DDP job's other local ranks by re-running the command
    line (``sys.argv``): under ``-m`` that is the whole sweep, and Lightning
    points them at a run folder, not the job's. Reading this instead, each
    runs exactly rank 0's job, in rank 0's folder (see :func:`rank_overrides`).
    """
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    overrides = [o for o in [*hydra.overrides.hydra, *hydra.overrides.task]
                 if override_key(o) not in NOT_SHARED_KEYS]
    os.environ[SHARED_JOB_ENV] = json.dumps({"overrides": overrides,
                                             "output_dir": hydra.runtime.output_dir})


def rank_overrides(overrides: list[str]) -> list[str] | None:
    """The overrides a process of a rank other than 0 runs with (it runs one job); None on rank 0.

    A rank Lightning started runs the job rank 0 shared; ranks that srun or
    torchrun started keep their own command line (give them one
    ``hydra.run.dir``). Neither writes a ``.hydra`` folder or a job log file:
    their log lines go to the console.
    """
    if global_rank() == 0:
        return None
    shared = os.environ.get(SHARED_JOB_ENV)
    if shared is None:
        return [*(o for o in overrides if override_key(o) not in RANK_OWN_KEYS), *RANK_OWN_OVERRIDES]
    job = json.loads(shared)
    return [*job["overrides"], "hydra.mode=RUN", f'hydra.run.dir="{job["output_dir"]}"',
            *RANK_OWN_OVERRIDES]


def standard_start_method() -> None:
    """Processes a job starts (DataLoader workers) start the platform's usual way.

    joblib's process workers (loky) make ``loky`` their default start method,
    which starts only loky's own processes: torch's DataLoader workers, plain
    ``multiprocessing`` processes, fail there. Other launchers run jobs where
    the default is the platform's already; there this changes nothing.
    """
    import multiprocessing

    usual = multiprocessing.get_all_start_methods()
    if multiprocessing.get_start_method(allow_none=True) not in (None, *usual):
        multiprocessing.set_start_method(usual[0], force=True)
