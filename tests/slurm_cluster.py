"""A real single-node SLURM cluster for tests: munged, slurmctld and slurmd for this host.

Everything lives in one folder: the munge key and socket, ``slurm.conf``, the
daemons' state, spool, logs and pid files. Commands reach it through the
``SLURM_CONF`` environment variable (:attr:`Cluster.env`), so ``sbatch``,
``srun``, ``squeue`` and ``scancel`` of the tests and of submitit use it and
never the machine's own configuration. It needs Debian's ``slurm-wlm`` and
``munge`` packages and root (slurmd starts jobs as their user).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

DAEMONS = ("munged", "slurmctld", "slurmd")
COMMANDS = ("sbatch", "srun", "squeue", "scancel", "sinfo")
START_TIMEOUT_S = 60
SLURM_CONF = """\
ClusterName=serotiny-test
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=600
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class ClusterUnavailable(RuntimeError):
    """Why this machine cannot run the cluster: the tests skip with it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def memory_mb() -> int:
    """Half the machine's memory: slurmd drains a node that has less than it is said to."""
    total_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal:"))
    return max(total_kb // 1024 // 2, 256)


def check_machine() -> None:
    """Raise ClusterUnavailable unless the packages are installed and this is root."""
    missing = [name for name in (*DAEMONS, *COMMANDS) if which(name) is None]
    if missing:
        raise ClusterUnavailable(f"SLURM is not installed ({', '.join(missing)} missing; "
                                 "apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("the test SLURM cluster needs root (slurmd runs jobs as their user)")


def which(name: str) -> str | None:
    """The program's path; daemons are in sbin, which a user's PATH may lack."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


@dataclass
class Cluster:
    """A started cluster: its folder and the pids of its daemons (a JSON state file holds both)."""

    folder: Path
    pids: dict[str, int]

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a command needs in its environment to use this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *args: str, timeout: float = 30) -> str:
        """Run a SLURM command (squeue, scancel, ...) against this cluster; its output."""
        done = subprocess.run(args, env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout, check=True)
        return done.stdout

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"folder": str(self.folder), "pids": self.pids}))

    @classmethod
    def load(cls, path: Path) -> "Cluster":
        state = json.loads(path.read_text())
        return cls(Path(state["folder"]), state["pids"])

    def wait_for(self, ready: Callable[[], bool], what: str, *logs: Path) -> None:
        """Wait until ``ready()``; ClusterUnavailable with the logs' tails if a daemon ends first."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            ended = [name for name, pid in self.pids.items() if not alive(pid)]
            if ended or time.monotonic() > deadline:
                why = f"{', '.join(ended)} ended" if ended else f"not ready in {START_TIMEOUT_S} s"
                tails = "".join(f"\n--- {log.name}:\n{log_tail(log)}" for log in logs
                                if log.is_file() and log.stat().st_size)
                raise ClusterUnavailable(f"SLURM did not start: {what}: {why}{tails}")
            time.sleep(0.5)

    def stop(self) -> None:
        """End the daemons, slurmd first (its jobs with it), munged last."""
        for name in reversed(DAEMONS):
            if name in self.pids:
                _terminate(self.pids[name])


def alive(pid: int) -> bool:
    """Whether the process runs (reaped first when it is a child of this process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _terminate(pid: int, timeout: float = 15) -> None:
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.2)


def write_config(folder: Path) -> Path:
    """The munge key and folders, and a slurm.conf for this host, in ``folder``."""
    for sub in ("munge", "state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub).chmod(0o700)
    key = folder / "munge" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(128))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=host, folder=folder, cpus=os.cpu_count() or 1,
                                      memory_mb=memory_mb(), ctld_port=free_port(),
                                      slurmd_port=free_port()))
    return conf


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> int:
    """Start a daemon in the foreground of a session of its own: it outlives the test worker."""
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return process.pid


def start(folder: Path) -> Cluster:
    """Start munged, slurmctld and slurmd for this host and wait for the node to be idle."""
    check_machine()
    conf = write_config(folder)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    munge = folder / "munge"
    pids = {"munged": _spawn([str(which("munged")), "--foreground", "--force",
                              f"--socket={munge}/munge.socket", f"--key-file={munge}/munge.key",
                              f"--pid-file={munge}/munged.pid", f"--seed-file={munge}/munged.seed",
                              f"--log-file={munge}/munged.log"], munge / "munged.console", env)}
    cluster = Cluster(folder, pids)
    try:
        cluster.wait_for(lambda: (munge / "munge.socket").exists(), "munged",
                         munge / "munged.console", munge / "munged.log")
        pids["slurmctld"] = _spawn([str(which("slurmctld")), "-D", "-i", "-f", str(conf)],
                                   folder / "slurmctld.console", env)
        pids["slurmd"] = _spawn([str(which("slurmd")), "-D", "-f", str(conf)],
                                folder / "slurmd.console", env)
        cluster.wait_for(lambda: _node_idle(env), "the node (sinfo: idle)",
                         *(folder / f"{name}.{kind}" for name in DAEMONS[1:]
                           for kind in ("console", "log")))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _node_idle(env: dict[str, str]) -> bool:
    done = subprocess.run(["sinfo", "--noheader", "--format=%t"], env=env, capture_output=True,
                          text=True, timeout=10)
    return done.returncode == 0 and done.stdout.split() == ["idle"]




STATE = "cluster.json"
UNAVAILABLE = "unavailable.txt"


def shared(root: Path) -> Cluster:
    """The test session's cluster, started by the first test that asks for it.

    pytest-xdist runs tests in several worker processes: the first one starts
    the cluster under a lock and leaves its state file in ``root`` (the folder
    all workers share); the others find it there, or find why it could not
    start. The daemons run in sessions of their own, so they outlive the
    worker that started them; :func:`stop_shared` ends them once, at the end.
    """
    folder = root / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / UNAVAILABLE).exists():
            raise ClusterUnavailable((folder / UNAVAILABLE).read_text())
        if (folder / STATE).exists():
            return Cluster.load(folder / STATE)
        try:
            cluster = start(folder)
        except ClusterUnavailable as why:
            (folder / UNAVAILABLE).write_text(str(why))
            raise
        cluster.save(folder / STATE)
        return cluster


def stop_shared(root: Path) -> None:
    """Stop the session's cluster if a test started one."""
    state = root / "slurm" / STATE
    if state.exists():
        Cluster.load(state).stop()
        state.unlink()
