"""The trainer command line and environment, and the process handles."""

from __future__ import annotations

import os
import subprocess
import sys

from lib_train_tools.jobs.job import Job
from lib_train_tools.jobs.launcher import PACKAGE_ROOT, TrainerLauncher
from lib_train_tools.jobs.process import AdoptedProcess, process_alive


def test_command_runs_the_trainer_module_on_the_run_files(tmp_path):
    job = Job(id="j", project="p", version="v", run_name="p-v", run_dir=tmp_path / "p-v")
    launcher = TrainerLauncher(python="/usr/bin/python3")
    assert launcher.command(job) == ["/usr/bin/python3", "-m", "lib_train_tools.train", "--config",
                                     str(tmp_path / "p-v" / "config.toml"), "--progress_file",
                                     str(tmp_path / "p-v" / "progress.jsonl")]
    job.resume_from = str(job.state_dir)
    assert launcher.command(job)[-2:] == ["--resume", str(tmp_path / "p-v" / "p-v-state")]
    assert (PACKAGE_ROOT / "lib_train_tools" / "train" / "__main__.py").is_file()


def test_environment_finds_this_package_first(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/somewhere", str(PACKAGE_ROOT)]))
    env = TrainerLauncher(env={"EXTRA": "1"}).environment()
    assert env["PYTHONPATH"].split(os.pathsep) == [str(PACKAGE_ROOT), "/somewhere"]
    assert env["PYTHONUNBUFFERED"] == "1" and env["PYTHONIOENCODING"] == "utf-8" and env["EXTRA"] == "1"


def test_launch_appends_output_to_the_log(tmp_path):
    script = tmp_path / "echo.py"
    script.write_text("import sys; print('args', sys.argv[1:]); print('err', file=sys.stderr)", encoding="utf-8")
    job = Job(id="j", project="p", version="v", run_name="p-v", run_dir=tmp_path / "run")
    handle = TrainerLauncher(entry=(str(script),)).launch(job)
    assert handle.wait(60) == 0 and not handle.running() and handle.exit_code == 0
    log = job.log_file.read_text(encoding="utf-8")
    assert log.startswith("[jobs] ") and "starting:" in log and "--progress_file" in log
    assert "args ['--config'" in log and "err" in log


def test_liveness_of_pids():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_alive(proc.pid)
        assert AdoptedProcess(proc.pid).running()
        if sys.platform.startswith("linux"):
            assert not process_alive(proc.pid, marker="no-such-config.toml")
            assert process_alive(proc.pid, marker="time.sleep")
    finally:
        proc.kill()
    proc.wait()
    assert not process_alive(proc.pid) and not process_alive(None) and not process_alive(0)
