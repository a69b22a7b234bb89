"""The two sides of a command's MLflow process: one interface, and a light MLflow process.

The command calls :class:`~serotiny_core.tracking.client.TrackingProcess`,
which sends each call by name to a :class:`~serotiny_core.tracking.worker.Tracker`
in the MLflow process: both must take the same arguments, or a call works
on one side and fails on the other only at run time.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection

import pytest

from serotiny_core.tracking import RunTracking, TrackingProcess, remote
from serotiny_core.tracking.worker import Tracker


@pytest.mark.parametrize("side", [Tracker, TrackingProcess])
@pytest.mark.parametrize("name", sorted(remote.METHODS))
def test_both_sides_have_each_method_of_the_interface_with_its_signature(side: type, name: str) -> None:
    assert inspect.signature(getattr(side, name)) == inspect.signature(getattr(RunTracking, name))


def test_the_interface_names_the_run_s_whole_lifecycle() -> None:
    assert {"open", "create", "open_child", "state", "log_config", "log_metrics", "end",
            "restore"} <= remote.METHODS


def test_only_the_interface_and_the_client_passthrough_are_sent() -> None:
    assert remote.check_method("log_config") == "log_config"
    assert remote.check_method("client.log_text") == "client.log_text"
    for name in ("_reopen", "guard", "client", "settings"):
        with pytest.raises(ValueError, match="not a method of RunTracking"):
            remote.check_method(name)


class _MaskSeen(Connection):
    """A Connection that notes which signals were blocked while it wrote."""

    def send(self, obj: object) -> None:
        self.blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        super().send(obj)


def test_a_message_over_16_kib_is_sent_whole_with_ctrl_c_held() -> None:
    """Connection writes such a message's header and body apart: a Ctrl-C between the two
    would leave half a message in the pipe. Afterwards, Ctrl-C is delivered again."""
    read_fd, write_fd = os.pipe()
    reader, writer = Connection(read_fd, writable=False), _MaskSeen(write_fd, readable=False)
    message = ("reply", 1, True, "x" * 40_000)  # over 16 KiB, under a pipe's 64 KiB buffer
    try:
        assert not reader.poll(0)
        remote.send(writer, message)
        assert {signal.SIGINT, signal.SIGTERM} <= writer.blocked
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert reader.poll(0) and reader.recv() == message
        writer.close()
        with pytest.raises(remote.GONE):
            reader.recv()
    finally:
        reader.close()


HEAVY = ("pluggy", "hydra", "torch", "lightning", "pytorch_lightning", "mlflow")
PROBE = f"""
import json, sys
import serotiny_core.tracking
early = "serotiny_core.tracking.worker" in sys.modules
import serotiny_core.tracking.worker
print(json.dumps({{"early": early, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def test_the_mlflow_process_module_imports_no_pluggy_hydra_torch_or_mlflow() -> None:
    """The MLflow process starts while the command composes its config, on the other core:
    it loads MLflow and its store, nothing else (MLflow itself only once it runs). The package
    leaves the worker module alone, so that ``python -m`` runs it without a runpy warning."""
    found = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert json.loads(found.stdout) == {"early": False, "loaded": []}
