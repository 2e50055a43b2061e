"""A new JobQueue on the same folder: finished jobs, jobs left running, queued jobs, shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from lib_train_tools.jobs.process import process_alive

from .conftest import wait_until
from .test_queue import finished, settings


def test_reload_sees_finished_jobs_with_their_progress_and_queue(make_queue, version, base_model):
    first = make_queue()
    done_job = first.submit(version, settings(base_model, "steps=4"))[0]
    first.start()
    finished(first, done_job)
    first.shutdown()
    waiting = first.submit(version, settings(base_model, "steps=1", network_dim=8))[0]
    second = make_queue()
    assert [j.id for j in second.jobs()] == [waiting.id, done_job.id]
    again = second.get(done_job.id)
    assert again.status == "completed" and again.run_name == done_job.run_name
    progress = second.progress(done_job.id)
    assert progress.done_status == "completed" and progress.step == 4
    assert [c.epoch for c in progress.checkpoints] == [1, 2] and len(progress.losses) == 4
    second.start()
    assert finished(second, waiting).status == "completed"


@pytest.mark.skipif(sys.platform == "win32", reason="kills by POSIX signal")
def test_dead_running_job_becomes_interrupted(make_queue, version, base_model, tmp_path):
    first = make_queue()
    job = first.submit(version, settings(base_model, f"steps=3;wait_file={tmp_path / 'never'}"))[0]
    first.start()
    wait_until(lambda: first.get(job.id).status == "running", what="the job to start")
    pid = first.get(job.id).pid
    first.shutdown(stop_running=False)  # the app goes away, the trainer keeps running
    assert json.loads(job.job_file.read_text(encoding="utf-8"))["status"] == "running"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not process_alive(pid), what="the trainer to die")
    second = make_queue()
    again = second.get(job.id)
    assert again.status == "interrupted" and again.pid is None and again.finished
    assert "app stopped" in again.message
    assert not second.can_resume(job.id)  # it never saved a state
    assert "found the trainer gone: interrupted" in second.log_tail(job.id)


def test_trainer_still_running_after_restart_is_followed_to_the_end(make_queue, version, base_model, tmp_path):
    go = tmp_path / "go"
    first = make_queue()
    job = first.submit(version, settings(base_model, f"steps=3;wait_file={go}"))[0]
    later = first.submit(version, settings(base_model, "steps=1", network_dim=8))[0]
    first.start()
    wait_until(lambda: first.progress(job.id).status == "running", what="the start event")
    first.shutdown(stop_running=False)
    second = make_queue()
    assert second.get(job.id).status == "running"  # adopted: its trainer is alive
    second.start()
    assert second.get(later.id).status == "queued"  # the lane is busy with the adopted job
    go.touch()
    done = finished(second, job)
    assert done.status == "completed" and done.exit_code is None  # not our child: no exit code
    assert second.progress(job.id).step == 3
    assert finished(second, later).status == "completed"


def test_shutdown_stops_running_job_as_interrupted_and_resumable(make_queue, version, base_model):
    queue = make_queue()
    job = queue.submit(version, settings(base_model, "steps=100000;delay=0.02;resume_steps=1"))[0]
    queue.start()
    wait_until(lambda: queue.progress(job.id).step >= 1, what="the first step")
    queue.shutdown(stop_running=True, timeout=30)
    stopped = queue.get(job.id)
    assert stopped.status == "interrupted" and "shutting down" in stopped.message
    second = make_queue()
    assert second.can_resume(job.id)
    second.resume(job.id)
    second.start()
    assert finished(second, job).status == "completed"


def test_done_event_decides_a_dead_jobs_status(make_queue, version, base_model):
    queue = make_queue()
    job = queue.submit(version, settings(base_model, "steps=2"))[0]
    queue.start()
    finished(queue, job)
    queue.shutdown()
    # Pretend the app died while the (finished) trainer was still being followed.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = json.loads(job.job_file.read_text(encoding="utf-8"))
    record.update(status="running", pid=dead.pid, finished=None)
    job.job_file.write_text(json.dumps(record), encoding="utf-8")
    assert make_queue().get(job.id).status == "completed"
