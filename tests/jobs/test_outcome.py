"""How a finished trainer's job ends, from its events, exit code and who stopped it."""

from __future__ import annotations

import pytest

from lib_train_tools.jobs.outcome import decide_outcome, last_line, read_log_tail, recovered_outcome
from lib_train_tools.jobs.progress_state import JobProgress
from lib_train_tools.train.protocol import DoneEvent, ErrorEvent, StartEvent


def progress(done: str | None = None, error: bool = False) -> JobProgress:
    p = JobProgress().apply_all([StartEvent(total_steps=4)])
    if error:
        p.apply(ErrorEvent(kind="out_of_memory", message="out of memory", hint="lower the batch size"))
    if done:
        p.apply(DoneEvent(status=done))
    return p


@pytest.mark.parametrize("done,error,code,reason,status", [
    ("completed", False, 0, None, "completed"),
    ("completed", False, 0, "cancel", "completed"),       # it finished before the stop arrived
    ("completed", False, 1, None, "failed"),              # a non-zero exit is a crash
    ("failed", True, 4, None, "failed"),
    ("cancelled", False, 0, "cancel", "cancelled"),
    (None, False, -9, "cancel", "cancelled"),             # killed by the second cancel
    ("cancelled", False, 130, "cancel", "cancelled"),
    ("cancelled", False, 0, "shutdown", "interrupted"),
    ("cancelled", False, 0, None, "interrupted"),         # a signal from elsewhere
    (None, False, 0, None, "failed"),                     # exit without a done event
    (None, False, 1, None, "failed"),
])
def test_outcomes(done, error, code, reason, status):
    assert decide_outcome(progress(done, error), code, reason).status == status


def test_failure_messages():
    out = decide_outcome(progress("failed", error=True), 4, None)
    assert (out.message, out.hint) == ("out of memory", "lower the batch size")
    out = decide_outcome(progress(), 1, None, last_log_line="ValueError: boom")
    assert out.message == ("the trainer exited with code 1 without reporting how the run ended; "
                           "its last output: ValueError: boom")
    out = decide_outcome(progress(), None, None, exit_known=False)
    assert out.status == "failed" and "stopped without reporting" in out.message


def test_adopted_trainer_without_exit_code():
    assert decide_outcome(progress("completed"), None, None, exit_known=False).status == "completed"


def test_recovered_jobs():
    assert recovered_outcome(progress("completed")).status == "completed"
    assert recovered_outcome(progress("failed", error=True)).message == "out of memory"
    assert recovered_outcome(progress("cancelled")).status == "interrupted"
    assert recovered_outcome(JobProgress()).status == "interrupted"


def test_log_tail_reads_the_last_lines(tmp_path):
    path = tmp_path / "train.log"
    assert read_log_tail(path) == ""
    path.write_text("".join(f"line {i} ねこ\n" for i in range(20000)), encoding="utf-8")
    assert read_log_tail(path, 3) == "line 19997 ねこ\nline 19998 ねこ\nline 19999 ねこ"
    assert read_log_tail(path, 0) == ""
    assert last_line("a\nb\n\n  \n") == "b"
