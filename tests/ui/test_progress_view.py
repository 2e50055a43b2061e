"""The progress block's text for each state of a job, and the sample pictures."""

from __future__ import annotations

from pathlib import Path

from lib_train_tools.jobs.job import Job
from lib_train_tools.jobs.progress_state import JobProgress
from lib_train_tools.train.protocol import DoneEvent, SampleEvent, StartEvent, StepEvent
from lib_train_tools.ui.progress_view import duration, progress_html, progress_numbers, sample_items


def job(status="running", **extra) -> Job:
    values = dict(id="j1", project="テスト", version="v1", run_name="テスト-v1-lr-0_001", run_dir=Path("/r"),
                  status=status, created=100.0, started=100.0, grid_values={"learning_rate": 0.001})
    values.update(extra)
    return Job(**values)


def running_progress() -> JobProgress:
    progress = JobProgress()
    progress.apply(StartEvent(total_steps=40, total_epochs=2, steps_per_epoch=20, time=100.0))
    progress.apply(StepEvent(step=10, total_steps=40, epoch=1, loss=0.1234567, avg_loss=0.13, it_per_sec=2.5,
                             eta_sec=75.0, time=104.0))
    return progress


def test_durations():
    assert [duration(s) for s in (0, 75, 3723, None, -1)] == ["0:00", "1:15", "1:02:03", "", ""]


def test_a_running_job_shows_bar_and_numbers():
    html = progress_html(job(), running_progress(), now=130.0)
    assert 'data-fraction="0.250"' in html and "width: 25.0%" in html
    assert progress_numbers(running_progress()) == ["step 10/40", "epoch 1/2", "loss 0.1235 (average 0.13)",
                                                    "2.5 it/s", "1:15 left"]
    assert "テスト-v1-lr-0_001" in html and "learning_rate 0.001" in html and "Running for 0:30" in html


def test_stopping_queued_and_starting_jobs_say_so():
    assert "Press <b>Cancel</b>" in progress_html(job(cancel_requests=1), running_progress())
    queued = progress_html(job("queued", started=None), None, position=2)
    assert "after 2 other job(s)" in queued and "tt-bar" not in queued
    assert "Waiting to start (next)" in progress_html(job("queued", started=None), None, position=0)
    assert "loading the base model" in progress_html(job(), JobProgress())
    assert "No training yet" in progress_html(None, None)


def test_a_completed_job_names_its_file():
    progress = running_progress()
    progress.apply(DoneEvent(status="completed", path="/r/テスト-v1-lr-0_001.safetensors", step=40))
    html = progress_html(job("completed", finished=160.0), progress)
    assert 'data-fraction="1.000"' in html and "Finished in 1:00: テスト-v1-lr-0_001.safetensors" in html


def test_failed_and_stopped_jobs_explain_what_happened():
    failed = job("failed", message="CUDA out of memory <oops>", hint="lower the batch size",
                 log_excerpt="line 1\nTraceback: boom", finished=110.0)
    html = progress_html(failed, running_progress())
    assert "CUDA out of memory &lt;oops&gt;" in html and "What to do: lower the batch size" in html
    assert "Traceback: boom" in html and "tt-job-error" in html
    stopped = job("interrupted", message="the app stopped while this job was running", finished=110.0)
    assert "Press <b>Resume</b>" in progress_html(stopped, None, can_resume=True)
    assert "cannot be resumed" in progress_html(stopped, None, can_resume=False)


def test_samples_on_disk_with_their_captions(tmp_path):
    picture = tmp_path / "s1.png"
    picture.write_bytes(b"png")
    progress = JobProgress()
    progress.apply(SampleEvent(path=str(picture), epoch=1, step=20, prompt="a red circle"))
    progress.apply(SampleEvent(path=str(tmp_path / "gone.png"), epoch=2, prompt="x"))
    assert sample_items(progress) == [(str(picture), "epoch 1: a red circle")]
    assert sample_items(None) == []
