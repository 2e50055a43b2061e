"""JobQueue with the fake trainer: order, moving, removing, cancelling, crashes, hooks, lanes."""

from __future__ import annotations

import os
import sys

import pytest

from lib_train_tools.jobs.grid import expand_grid
from lib_train_tools.jobs.hooks import JobHooks
from lib_train_tools.jobs.job import JobError
from lib_train_tools.jobs.queue import JobQueue, device_lane

from .conftest import wait_until


def settings(base_model, comment: str = "steps=2;delay=0.01", **extra) -> dict:
    return {"base_model": str(base_model), "training_comment": comment, **extra}


def finished(queue, job):
    done = queue.wait(job.id, timeout=60)
    assert done.status not in ("queued", "running"), f"{job.run_name} did not finish"
    return done


def test_jobs_run_in_queue_order_after_moves(make_queue, version, base_model):
    queue = make_queue()
    runs = expand_grid(settings(base_model), {"learning_rate": [1e-4, 2e-4, 3e-4]})
    a, b, c = queue.submit(version, runs)
    assert [j.id for j in queue.jobs()] == [a.id, b.id, c.id]
    assert queue.move(c.id, -2) == 0
    assert queue.move(a.id, +5) == 2  # clamped to the end
    assert [j.id for j in queue.jobs()] == [c.id, b.id, a.id]
    queue.start()
    results = [finished(queue, j) for j in (a, b, c)]
    assert all(r.status == "completed" for r in results)
    by_start = sorted(results, key=lambda j: j.started)
    assert [j.id for j in by_start] == [c.id, b.id, a.id]
    for earlier, later in zip(by_start, by_start[1:]):
        assert earlier.finished <= later.started  # one at a time on the lane
    assert [j.id for j in queue.jobs()] == [a.id, b.id, c.id]  # finished newest first


def test_run_folders_names_and_files(make_queue, version, base_model):
    queue = make_queue()
    runs = expand_grid(settings(base_model, "steps=4"), {"learning_rate": [1e-4, 5e-4], "network_dim": [8]})
    jobs = queue.submit(version, runs)
    assert [j.run_name for j in jobs] == ["proj-v1-lr-0_0001", "proj-v1-lr-0_0005"]
    assert jobs[0].grid_values == {"learning_rate": 1e-4}
    again = queue.submit(version, runs[:1])[0]
    assert again.run_name == "proj-v1-lr-0_0001-2"
    queue.start()
    done = finished(queue, jobs[1])
    assert done.status == "completed"
    run_dir = version.trains / "proj-v1-lr-0_0005"
    assert done.run_dir == run_dir
    names = {p.name for p in run_dir.iterdir()}
    assert {"job.json", "config.toml", "progress.jsonl", "train.log", "proj-v1-lr-0_0005.safetensors",
            "proj-v1-lr-0_0005-000001.safetensors"} <= names
    toml = (run_dir / "config.toml").read_text(encoding="utf-8")
    assert 'output_name = "proj-v1-lr-0_0005"' in toml and "network_dim = 8" in toml
    progress = queue.progress(done.id)
    assert progress.done_status == "completed" and progress.step == 4
    assert [c.epoch for c in progress.checkpoints] == [1, 2]


def test_remove_queued_deletes_its_empty_folder_but_not_finished_runs(make_queue, version, base_model):
    queue = make_queue()
    first, second = queue.submit(version, expand_grid(settings(base_model), {"network_dim": [4, 8]}))
    queue.remove(second.id)
    assert not second.run_dir.exists()
    assert [j.id for j in queue.jobs()] == [first.id]
    queue.start()
    finished(queue, first)
    queue.remove(first.id)
    assert first.run_dir.is_dir() and (first.run_dir / f"{first.run_name}.safetensors").is_file()
    assert queue.jobs() == []
    with pytest.raises(JobError, match="no job"):
        queue.get(first.id)


def test_remove_running_job_is_refused(make_queue, version, base_model, tmp_path):
    queue = make_queue()
    job = queue.submit(version, settings(base_model, f"steps=2;wait_file={tmp_path / 'go'}"))[0]
    queue.start()
    wait_until(lambda: queue.get(job.id).status == "running", what="the job to start")
    with pytest.raises(JobError, match="cancel it first"):
        queue.remove(job.id)
    (tmp_path / "go").touch()
    assert finished(queue, job).status == "completed"


def test_cancel_queued_job_never_starts(make_queue, version, base_model, tmp_path):
    queue = make_queue()
    hold, later = queue.submit(version, expand_grid(settings(base_model, f"steps=1;wait_file={tmp_path / 'go'}"),
                                                    {"network_dim": [4, 8]}))
    queue.start()
    wait_until(lambda: queue.get(hold.id).status == "running", what="the first job to start")
    cancelled = queue.cancel(later.id)
    assert cancelled.status == "cancelled" and cancelled.started is None
    (tmp_path / "go").touch()
    assert finished(queue, hold).status == "completed"
    assert queue.get(later.id).status == "cancelled"
    assert not later.progress_file.exists()
    assert not queue.can_resume(later.id)


def test_cancel_running_stops_saves_and_resumes(make_queue, version, base_model):
    queue = make_queue()
    job = queue.submit(version, settings(base_model, "steps=100000;delay=0.02;resume_steps=3"))[0]
    queue.start()
    wait_until(lambda: queue.progress(job.id).step >= 1, what="the first step")
    queue.cancel(job.id)
    done = finished(queue, job)
    assert done.status == "cancelled" and done.exit_code == 0
    progress = queue.progress(job.id)
    assert progress.done_status == "cancelled" and progress.checkpoints
    assert queue.can_resume(job.id)
    stopped_at = progress.step
    resumed = queue.resume(job.id)
    assert resumed.status == "queued" and resumed.resume_from == str(job.state_dir)
    done = finished(queue, job)
    assert done.status == "completed"
    progress = queue.progress(job.id)
    assert progress.step == stopped_at + 3
    assert [s for s, _ in progress.losses][-3:] == [stopped_at + 1, stopped_at + 2, stopped_at + 3]
    assert "--resume" in queue.log_tail(job.id, 200)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal semantics")
def test_second_cancel_kills_a_trainer_that_ignores_sigterm(make_queue, version, base_model):
    queue = make_queue()
    job = queue.submit(version, settings(base_model, "steps=100000;delay=0.02;ignore_term=1"))[0]
    queue.start()
    wait_until(lambda: queue.progress(job.id).step >= 1, what="the first step")
    queue.cancel(job.id)
    wait_until(lambda: "asking the trainer to stop" in queue.log_tail(job.id), what="the stop request")
    asked_at = queue.progress(job.id).step
    wait_until(lambda: queue.progress(job.id).step > asked_at + 2, what="steps after SIGTERM")
    assert queue.get(job.id).status == "running"  # SIGTERM is ignored by this trainer
    queue.cancel(job.id)
    done = finished(queue, job)
    assert done.status == "cancelled" and done.exit_code == -9
    assert "killing the trainer" in queue.log_tail(job.id)


def test_crash_with_error_event_reports_message_hint_and_log(make_queue, version, base_model):
    queue = make_queue()
    job = queue.submit(version, settings(base_model, "steps=1;mode=error"))[0]
    queue.start()
    done = finished(queue, job)
    assert done.status == "failed" and done.exit_code == 3
    assert done.message == "fake: no usable images" and done.hint == "add images to the dataset"
    assert "about to report an error" in done.log_excerpt
    assert queue.progress(job.id).error.kind == "data"


@pytest.mark.parametrize("mode,code,words", [("crash", 1, "RuntimeError: fake crash"), ("exit0", 0, "code 0")])
def test_exit_without_done_event_is_a_failure(make_queue, version, base_model, mode, code, words):
    queue = make_queue()
    job = queue.submit(version, settings(base_model, f"steps=1;mode={mode}"))[0]
    queue.start()
    done = finished(queue, job)
    assert done.status == "failed" and done.exit_code == code
    assert "without reporting how the run ended" in done.message and words in done.message
    assert "fake trainer proj-v1 starting" in done.log_excerpt
    assert not queue.can_resume(job.id)


def test_hooks_are_called_and_a_failing_hook_is_logged(make_queue, version, base_model):
    calls = []

    def before(job):
        calls.append(("before", job.id))
        raise RuntimeError("host cannot unload its model")

    def after(job, progress):
        calls.append(("after", job.id, job.status, progress.done_status))

    def on_event(job, event):
        calls.append(("event", event.type))

    queue = make_queue(hooks=JobHooks(before_job=before, after_job=after, on_event=on_event))
    job = queue.submit(version, settings(base_model))[0]
    queue.start()
    assert finished(queue, job).status == "completed"
    wait_until(lambda: any(c[0] == "after" for c in calls), what="the after_job hook")
    assert calls[0] == ("before", job.id) and calls[-1] == ("after", job.id, "completed", "completed")
    kinds = [c[1] for c in calls if c[0] == "event"]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 2
    log = queue.log_tail(job.id, 200)
    assert "hook before_job failed" in log and "host cannot unload its model" in log


def test_device_lanes_run_side_by_side(make_queue, version, base_model, tmp_path):
    queue = make_queue()
    held = queue.submit(version, settings(base_model, f"steps=1;wait_file={tmp_path / 'go'}"))[0]
    on_cpu = queue.submit(version, settings(base_model, "steps=1", device="cpu"))[0]
    same_gpu = queue.submit(version, settings(base_model, "steps=1", device="cuda:0"))[0]
    assert (held.device, on_cpu.device, same_gpu.device) == ("default", "cpu", "default")
    queue.start()
    assert finished(queue, on_cpu).status == "completed"
    assert queue.get(held.id).status == "running" and queue.get(same_gpu.id).status == "queued"
    (tmp_path / "go").touch()
    assert finished(queue, same_gpu).status == "completed"


def test_device_lane_names():
    assert device_lane(None) == device_lane("cuda") == device_lane("CUDA:0") == "default"
    assert device_lane("cuda:1") == "cuda:1" and device_lane("cpu") == "cpu"


def test_invalid_settings_are_refused_at_submit_with_every_problem(make_queue, version, base_model):
    queue = make_queue()
    bad = settings(base_model, network_dim=0, lr_scheduler="sideways", resolution="65")
    with pytest.raises(JobError) as error:
        queue.submit(version, expand_grid(bad, {"learning_rate": [1e-4, 2e-4]}))
    text = str(error.value)
    assert "network_dim" in text and "lr_scheduler" in text and "resolution" in text
    assert list(version.trains.iterdir()) == [] and queue.jobs() == []


def test_submit_applies_new_repeats_unless_the_version_is_busy(make_queue, version, base_model, tmp_path):
    queue = make_queue()
    queue.submit(version, settings(base_model, repeats=5))
    assert version.processed_repeats() == 5
    with pytest.raises(JobError, match="queued or running"):
        queue.submit(version, settings(base_model, repeats=3))
    assert version.processed_repeats() == 5


def test_second_queue_on_the_same_folder_cannot_start(make_queue, store):
    first = make_queue()
    first.start()
    with pytest.raises(JobError, match="another Train Tools process"):
        JobQueue(store.root / "jobs").start()
    first.shutdown()
    other = make_queue()
    other.start()


def test_unicode_project_runs_end_to_end(make_queue, store, base_model):
    from .conftest import add_processed_images

    store.create_project("猫のキャラ")
    store.create_version("猫のキャラ", "版 1")
    version = store.version("猫のキャラ", "版 1")
    add_processed_images(version, repeats=1, count=1)
    queue = make_queue()
    job = queue.submit(version, expand_grid(settings(base_model), {"optimizer_type": ["AdamW", "Lion"]}))[1]
    assert job.run_name == "猫のキャラ-版 1-op-Lion"
    queue.start()
    assert finished(queue, job).status == "completed"
    assert (job.run_dir / "猫のキャラ-版 1-op-Lion.safetensors").is_file()
    assert queue.progress(job.id).final_path.endswith("猫のキャラ-版 1-op-Lion.safetensors")
    assert os.fspath(version.processed_parent) in (job.run_dir / "config.toml").read_text(encoding="utf-8")
