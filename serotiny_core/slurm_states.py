"""Job states for submitit's SLURM launcher, also on clusters that keep no accounting.

submitit learns that a job ended from the result file the job writes, or
else from ``sacct``. On a cluster without accounting
(``AccountingStorageType=accounting_storage/none``, common on small clusters
and single machines) ``sacct`` fails at every poll, submitit logs a warning
each time, and a job that ended without writing its result (cancelled with
``scancel``, killed at its time limit or for memory) is waited for forever.
There the launcher asks ``squeue`` instead, which lists every job the
controller knows. Imported only by sweeps that use the SLURM launcher.
"""

from __future__ import annotations

import subprocess
import time

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

# What submitit's sacct command asks for, in its order: read_info reads these names.
SQUEUE_HEADER = "JobID|State|NodeList\n"
SQUEUE = ["squeue", "--noheader", "--me", "--states=all", "--format=%i|%T|%N"]
# A job squeue no longer lists ended more than MinJobAge ago: the controller forgot it.
FORGOTTEN = "ENDED"
# submitit's own: the longest wait between two polls, in seconds.
SUBMITIT_DELAY_S = 600
# squeue answers from the controller's memory, cheaply: asked at least this often (seconds),
# so a job that ends without a result is noticed soon, not after half its run time.
SQUEUE_EVERY_S = 10


class JobStates(SlurmInfoWatcher):
    """Job states from ``sacct``, or from ``squeue`` where ``sacct`` fails (no accounting)."""

    def __init__(self, delay_s: int) -> None:
        super().__init__(delay_s=delay_s)
        self.accounting: bool | None = None  # found out at the first poll

    def _make_command(self) -> list[str] | None:
        sacct = super()._make_command()
        if sacct is not None and self.accounting is None:
            self.accounting = _succeeds(sacct)
        return sacct if sacct is None or self.accounting else SQUEUE

    def update_if_long_enough(self, mode: str) -> None:
        due = time.time() - self._last_status_check > SQUEUE_EVERY_S
        super().update_if_long_enough("force" if mode == "standard" and due and
                                      self.accounting is False else mode)

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        if self.accounting:
            return super().read_info(string)
        text = string.decode() if isinstance(string, bytes) else string
        states = super().read_info(SQUEUE_HEADER + text)
        for job_id in self._registered - set(states):  # each was listed when it was submitted
            states[job_id] = {"JobID": job_id, "State": FORGOTTEN, "NodeList": ""}
        return states


def _succeeds(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):  # not installed here, or hanging
        return False


def watch_sweep() -> None:
    """Give the sweep's SLURM jobs a watcher that falls back to squeue.

    submitit's SLURM jobs read their states through one watcher, a class
    attribute of ``SlurmJob``. A new one per sweep: it learns afresh whether
    the cluster keeps accounting. Where sacct works it behaves as submitit's.
    """
    SlurmJob.watcher = JobStates(delay_s=SUBMITIT_DELAY_S)
