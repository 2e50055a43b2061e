"""Progress panel handlers on a real job queue running the fake trainer: begin, queue, cancel, poll."""

from __future__ import annotations

import json

import pytest

from lib_train_tools.ui import progress_actions as actions
from lib_train_tools.ui.replies import NO_CHANGE, Table, Update

from .fake_queue import SELECTION, restart, trainable, wait_until


def order(services) -> list[str]:
    return [j.run_name for j in services.queue.jobs() if j.status == "queued"]


def polled(services, selected="", selection=SELECTION, keys=""):
    reply = actions.poll(services, selected, selection, keys)
    return dict(zip(actions.POLL_OUTPUTS, reply.values))


def test_add_to_queue_queues_one_run_per_grid_combination(queue_services):
    selection = trainable(queue_services, grid_learning_rate=["0.001", "0.0005"], grid_max_train_epochs=["1", "2"])
    reply = actions.add_to_queue(queue_services, selection)
    assert "queued 4 runs of テスト/v1" in reply.notice.text and "training starts now" in reply.notice.text
    assert reply.values == ("",)  # the panel goes back to showing the running (or newest) job
    assert order(queue_services) == ["テスト-v1-ep-1-lr-0_001", "テスト-v1-ep-1-lr-0_0005",
                                     "テスト-v1-ep-2-lr-0_001", "テスト-v1-ep-2-lr-0_0005"]
    job = queue_services.queue.jobs()[0]
    assert job.grid_values == {"max_train_epochs": 1, "learning_rate": 0.001}
    assert (job.run_dir / "config.toml").is_file()
    assert "max_train_epochs = 1" in (job.run_dir / "config.toml").read_text(encoding="utf-8")


def test_begin_train_goes_ahead_of_the_waiting_jobs_and_add_to_queue_behind(queue_services):
    selection = trainable(queue_services)
    actions.add_to_queue(queue_services, selection)
    trainable(queue_services, grid_network_dim=["4", "8"])
    reply = actions.begin_train(queue_services, selection)
    assert "queued 2 runs" in reply.notice.text
    assert order(queue_services) == ["テスト-v1-net-4", "テスト-v1-net-8", "テスト-v1"]
    trainable(queue_services, grid_network_dim=None)
    reply = actions.add_to_queue(queue_services, selection)
    assert "after the 3 job(s) before it" in reply.notice.text
    assert order(queue_services) == ["テスト-v1-net-4", "テスト-v1-net-8", "テスト-v1", "テスト-v1-2"]


def test_nothing_is_queued_when_a_setting_cannot_train(queue_services):
    selection = trainable(queue_services, grid_learning_rate=["0.001"], base_model="missing.safetensors")
    with pytest.raises(ValueError, match="missing.safetensors does not exist"):
        actions.begin_train(queue_services, selection)
    assert queue_services.queue.jobs() == []
    with pytest.raises(ValueError, match="choose or create a project"):
        actions.begin_train(queue_services, "")


def test_cancel_stops_and_saves_then_a_second_cancel_kills(queue_services):
    queue = queue_services.queue
    selection = trainable(queue_services, "steps=400;delay=0.05;ignore_term=1")
    actions.begin_train(queue_services, selection)
    queue.start()
    job = wait_until(lambda: next((j for j in queue.jobs() if j.status == "running"), None), what="a running job")
    wait_until(lambda: queue.progress(job.id).step >= 1, what="a first step")
    first = actions.cancel_job(queue_services, "", selection)
    assert "stop after this step and save" in first.notice.text and first.values == (NO_CHANGE,)
    assert "Stopping" in polled(queue_services)["progress"]
    second = actions.cancel_job(queue_services, "", selection)
    assert "killed" in second.notice.text
    done = queue.wait(job.id, timeout=60)
    assert done.status == "cancelled" and done.cancel_requests == 2
    again = actions.cancel_job(queue_services, job.id, selection)
    assert again.notice.kind == "info" and "nothing to cancel" in again.notice.text


def test_cancel_a_queued_job_before_it_starts(queue_services):
    selection = trainable(queue_services)
    actions.add_to_queue(queue_services, selection)
    reply = actions.cancel_job(queue_services, "", selection)
    assert "cancelled テスト-v1 before it started" in reply.notice.text
    assert queue_services.queue.jobs()[0].status == "cancelled"


def test_poll_shows_a_run_to_its_end_and_sends_only_what_changed(queue_services):
    queue = queue_services.queue
    selection = trainable(queue_services, "steps=4;delay=0.01")
    actions.begin_train(queue_services, selection)
    first = polled(queue_services)
    assert "Waiting to start (next)" in first["progress"] and isinstance(first["queue"], Table)
    keys = first["keys"]
    same = polled(queue_services, keys=keys)
    assert [same[name] for name in actions.POLL_OUTPUTS] == [NO_CHANGE] * len(actions.POLL_OUTPUTS)
    queue.start()
    job = queue.jobs()[0]
    assert queue.wait(job.id, timeout=60).status == "completed"
    wait_until(lambda: "finished: completed" in queue.log_tail(job.id), what="the log's last line")
    done = polled(queue_services, keys=keys)
    assert 'data-fraction="1.000"' in done["progress"] and "step 4/4" in done["progress"]
    assert "Finished in" in done["progress"] and "テスト-v1.safetensors" in done["progress"]
    assert 'data-points="4"' in done["chart"]
    assert "[jobs]" in done["log"] and "finished: completed" in done["log"]
    assert done["queue"].rows[0][:3] == ("▶", "completed", "テスト-v1")
    assert first["resume"] == Update.of(visible=False) and done["resume"] is NO_CHANGE  # unchanged: not sent
    assert json.loads(done["keys"])["ids"] == [job.id]


def test_a_reloaded_page_or_restarted_app_shows_the_same(queue_services):
    queue = queue_services.queue
    selection = trainable(queue_services, "steps=4;delay=0.01")
    actions.begin_train(queue_services, selection)
    queue.start()
    assert queue.wait(queue.jobs()[0].id, timeout=60).status == "completed"
    before = polled(queue_services)
    queue.shutdown()
    after = polled(restart(queue_services))  # a new queue on the same folder, a page without keys
    assert after["progress"] == before["progress"] and after["chart"] == before["chart"]


def test_a_failed_job_shows_its_error_hint_and_log(queue_services):
    queue = queue_services.queue
    selection = trainable(queue_services, "steps=2;mode=error")
    actions.begin_train(queue_services, selection)
    queue.start()
    job = queue.wait(queue.jobs()[0].id, timeout=60)
    assert job.status == "failed"
    shown = polled(queue_services)["progress"]
    assert "failed" in shown and "tt-job-error" in shown
    assert job.message and job.message.split(":")[0] in shown
    assert "What to do:" in shown and "End of the log" in shown


def test_an_interrupted_job_offers_resume(queue_services):
    queue = queue_services.queue
    selection = trainable(queue_services, "steps=400;delay=0.05")
    actions.begin_train(queue_services, selection)
    queue.start()
    job = queue.jobs()[0]
    wait_until(lambda: queue.progress(job.id).step >= 2, what="two steps")
    queue.shutdown(stop_running=True)  # the app stops: the trainer saves, the job is interrupted
    services = restart(queue_services)
    assert services.queue.get(job.id).status == "interrupted"
    shown = polled(services)
    assert "interrupted" in shown["progress"] and "Press <b>Resume</b>" in shown["progress"]
    assert shown["resume"] == Update.of(visible=True)
    from lib_train_tools.ui.queue_actions import resume_job

    reply = resume_job(services, "", selection)
    assert "queued again" in reply.notice.text and services.queue.get(job.id).status == "queued"
