"""Starting the trainer subprocess of a job.

``python -m lib_train_tools.train --config <run_dir>/config.toml --progress_file
<run_dir>/progress.jsonl [--resume <state folder>]``, with standard output and error appended to
``<run_dir>/train.log``; the working folder and ``PYTHONPATH`` are the folder that holds
``lib_train_tools``, so the WebUI's interpreter finds this copy of the package.

Tests pass another ``entry`` (a small script that writes protocol events) to run the same queue
against a fake trainer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .job import Job
from .process import WINDOWS, TrainerProcess

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
TRAINER_ENTRY = ("-m", "lib_train_tools.train")


class TrainerLauncher:
    """Starts trainer processes with ``python`` running ``entry`` (module or script and its arguments)."""

    def __init__(self, python: str | None = None, package_root: Path = PACKAGE_ROOT,
                 entry: Sequence[str] = TRAINER_ENTRY, env: dict[str, str] | None = None) -> None:
        self.python = python or sys.executable
        self.package_root = Path(package_root)
        self.entry = tuple(entry)
        self.extra_env = dict(env or {})

    def command(self, job: Job) -> list[str]:
        args = [self.python, *self.entry, "--config", str(job.config_file), "--progress_file",
                str(job.progress_file)]
        if job.resume_from:
            args += ["--resume", job.resume_from]
        return args

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(self.package_root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"  # Japanese paths in log lines on any console code page
        env.update(self.extra_env)
        return env

    def launch(self, job: Job) -> TrainerProcess:
        """Start the trainer for ``job``; its output goes to the end of the job's train.log."""
        command = self.command(job)
        job.run_dir.mkdir(parents=True, exist_ok=True)
        with open(job.log_file, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"[jobs] {stamp} starting: {subprocess.list2cmdline(command)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                command, cwd=str(self.package_root), env=self.environment(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
                creationflags=subprocess.CREATE_NEW_PROCESS_GROUP if WINDOWS else 0,  # type: ignore[attr-defined]  # Windows only
            )
        return TrainerProcess(popen)
