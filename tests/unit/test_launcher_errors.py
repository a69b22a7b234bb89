"""A launcher's job that ends without a result is one line: its state, its own error, its log."""

from __future__ import annotations

from submitit.core.utils import UncompletedJobError

from serotiny_core.errors import SerotinyError
from serotiny_core.hydra_errors import translate

# As submitit words it: two lines, then the job's whole error stream.
HEAD = ("Job 12_0 (task: 0) with path /p/multirun/.submitit/12_0/12_0_0_result.pkl\n"
        "has not produced any output (state: CANCELLED by 0)\n")
STREAM = ("Error stream produced:\n----------------------------------------\n"
          "Traceback (most recent call last):\n  File \"x.py\", line 1, in task\n"
          "serotiny_core.hydra_app.JobFailed: train interrupted; last checkpoint: "
          "/p/multirun/0/checkpoints/last.ckpt (run the same command again to resume)\n"
          "srun: error: vm: task 0: Exited with exit code 1\n")


def test_a_cancelled_job_is_one_line_with_its_state_its_own_error_and_its_log() -> None:
    error = translate(UncompletedJobError(HEAD + STREAM))
    assert isinstance(error, SerotinyError) and "\n" not in str(error)
    assert str(error) == (
        "the launcher's job 12_0 ended without a result (state: CANCELLED by 0): train interrupted; "
        "last checkpoint: /p/multirun/0/checkpoints/last.ckpt (run the same command again to resume)"
        " (its log: /p/multirun/.submitit/12_0/12_0_0_log.err)")


def test_a_job_killed_before_it_could_say_why_names_its_state_and_log() -> None:
    error = translate(UncompletedJobError(HEAD.replace("CANCELLED by 0", "OUT_OF_MEMORY")))
    assert str(error) == ("the launcher's job 12_0 ended without a result (state: OUT_OF_MEMORY) "
                          "(its log: /p/multirun/.submitit/12_0/12_0_0_log.err)")


def test_other_submitit_errors_are_left_as_they_are() -> None:
    error = UncompletedJobError("Job 3 timed out without a trace")
    assert translate(error) is error
