"""Starting the standalone app in a subprocess for browser tests, and finding Debian's chromium.

``AppServer.start(output, checkpoints)`` runs ``python -m lib_train_tools --port <free port>``
from the repository root with the test's Python, waits (generously) until the page answers, and
``stop()`` ends it. The log is kept so a failed start shows why.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_DEADLINE_S = 180
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost, never via a proxy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_chromium() -> Path:
    """Debian's chromium; in CI (``CI`` set) a missing browser fails the test instead of skipping it."""
    if CHROMIUM.is_file():
        return CHROMIUM
    message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class AppServer:
    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process = process
        self.url = url
        self.log = log

    @classmethod
    def start(cls, output: Path, checkpoints: Path, log: Path, launcher: list[str] | None = None,
              extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> "AppServer":
        """``launcher``: what runs the app (default ``-m lib_train_tools``; a test script may wrap it);
        ``env``: variables added to this process's environment for the app."""
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), GRADIO_ANALYTICS_ENABLED="False", **(env or {}))
        command = [sys.executable] + (launcher or ["-m", "lib_train_tools"]) + [
            "--port", str(port), "--output", str(output), "--checkpoints", str(checkpoints)] + (extra_args or [])
        handle = open(log, "w", encoding="utf-8")
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        server = cls(process, f"http://127.0.0.1:{port}/", log)
        server._wait_until_up()
        return server

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                with _NO_PROXY.open(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the app did not answer within {START_DEADLINE_S} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
