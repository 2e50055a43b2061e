"""Handles on trainer processes: the ones we started, and ones a previous app process left running.

`TrainerProcess` wraps the ``Popen`` of a trainer this process started. `AdoptedProcess` follows a
trainer found still running by pid after the app restarted (no exit code can be learnt for it).
Both offer the same calls: ``running()``, ``exit_code``, ``request_stop()`` (ask the trainer to
stop after the current step and save: SIGTERM, or CTRL_BREAK on Windows) and ``kill()``.

`process_alive(pid, marker)` says whether a pid still belongs to a live process; with a marker
(the run's config path) it also checks the command line where the system shows it (Linux), so a
pid reused by another program does not count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

WINDOWS = sys.platform == "win32"
_STILL_ACTIVE = 259
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000


class TrainerProcess:
    """A trainer subprocess started by this app."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self._popen = popen
        self.pid = popen.pid

    def running(self) -> bool:
        return self._popen.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self._popen.poll()

    def request_stop(self) -> None:
        _send_stop(self.pid)

    def kill(self) -> None:
        if self.running():
            self._popen.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


class AdoptedProcess:
    """A trainer started by a previous app process, followed by its pid."""

    def __init__(self, pid: int, marker: str | None = None) -> None:
        self.pid = pid
        self.marker = marker

    def running(self) -> bool:
        return process_alive(self.pid, self.marker)

    @property
    def exit_code(self) -> int | None:
        return None  # only the parent learns the exit code

    def wait(self, timeout: float | None = None) -> int | None:
        return None

    def request_stop(self) -> None:
        if self.running():
            _send_stop(self.pid)

    def kill(self) -> None:
        if not self.running():
            return
        if WINDOWS:
            subprocess.run(["taskkill", "/F", "/PID", str(self.pid)], capture_output=True, check=False)
        else:
            os.kill(self.pid, signal.SIGKILL)


def _send_stop(pid: int) -> None:
    """Ask the trainer to stop after the current step and save (its SIGTERM/SIGINT handler)."""
    try:
        if WINDOWS:
            os.kill(pid, signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]  # Windows only; needs CREATE_NEW_PROCESS_GROUP
        else:
            os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError, OSError):
        pass  # it has already gone


def process_alive(pid: int | None, marker: str | None = None) -> bool:
    """Whether ``pid`` is a live (not zombie) process, whose command line holds ``marker`` if given."""
    if not pid or pid <= 0:
        return False
    if WINDOWS:
        return _windows_alive(pid)
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        return _linux_alive(proc, marker)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _linux_alive(proc: Path, marker: str | None) -> bool:
    try:
        stat = (proc / "stat").read_text(encoding="utf-8", errors="replace")
        state = stat.rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        if marker is None:
            return True
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", errors="replace")
        return marker in cmdline
    except (OSError, IndexError):
        return False


def _windows_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return False
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
