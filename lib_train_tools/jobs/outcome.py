"""How a job ended, decided from its progress events, its exit code and who asked it to stop.

Rules: a trainer that exits 0 after a ``done`` event ends as that event says; a crash (a non-zero
exit, or an exit without a ``done`` event) is ``failed`` with the last error event's message and
hint and the end of the log. A stop the user asked for is ``cancelled``; a stop the app made
(shutting down) or one nobody here asked for (a signal from elsewhere) is ``interrupted``, which
can be resumed from the run's state folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .progress_state import JobProgress

LOG_EXCERPT_LINES = 20
_TAIL_BLOCK = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    status: str
    message: str | None = None
    hint: str | None = None


def decide_outcome(progress: JobProgress, exit_code: int | None, stop_reason: str | None,
                   exit_known: bool = True, last_log_line: str = "") -> Outcome:
    """Final status of a job whose trainer has exited.

    ``stop_reason`` is "cancel" (the user), "shutdown" (the app) or None; ``exit_known`` is False
    for a trainer adopted from a previous app process (its exit code cannot be learnt).
    """
    done = progress.done_status
    clean_exit = exit_code == 0 or not exit_known
    if done == "completed" and clean_exit:
        return Outcome("completed")
    if done == "failed" or (progress.error is not None and stop_reason is None):
        return _failed(progress, exit_code, exit_known, last_log_line)
    if stop_reason == "cancel":
        return Outcome("cancelled", "cancelled by the user")
    if stop_reason == "shutdown":
        return Outcome("interrupted", "stopped because the app was shutting down")
    if done == "cancelled" and clean_exit:
        return Outcome("interrupted", "the trainer was stopped by a signal from outside the app")
    return _failed(progress, exit_code, exit_known, last_log_line)


def _failed(progress: JobProgress, exit_code: int | None, exit_known: bool, last_log_line: str) -> Outcome:
    if progress.error is not None:
        return Outcome("failed", progress.error.message, progress.error.hint)
    if not exit_known:
        how = "the trainer stopped without reporting how the run ended"
    elif progress.done_status is None:
        how = f"the trainer exited with code {exit_code} without reporting how the run ended"
    else:
        how = f"the trainer exited with code {exit_code}"
    if last_log_line:
        how += f"; its last output: {last_log_line}"
    return Outcome("failed", how, "see the log below for the details")


def recovered_outcome(progress: JobProgress) -> Outcome:
    """Status of a job a previous app process left "running" whose trainer is gone."""
    if progress.done_status == "completed":
        return Outcome("completed")
    if progress.done_status == "failed":
        return _failed(progress, None, False, "")
    return Outcome("interrupted", "the app stopped while this job was running")


def read_log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (empty text when there is none); reads only the end."""
    if lines <= 0:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            start, data = end, b""
            while start > 0 and data.count(b"\n") <= lines:
                start = max(0, start - _TAIL_BLOCK)
                handle.seek(start)
                data = handle.read(end - start)
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    return "\n".join(text.rstrip("\n").split("\n")[-lines:]) if text.strip() else ""


def last_line(text: str) -> str:
    """The last non-blank line of ``text``, stripped."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""
