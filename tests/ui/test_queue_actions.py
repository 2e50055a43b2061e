"""The queue table and the actions on the shown job: which job is shown, choose, move, remove."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib_train_tools.jobs.job import Job
from lib_train_tools.ui import progress_actions
from lib_train_tools.ui import queue_actions as actions

from .fake_queue import trainable


def job(job_id, status, project="テスト", version="v1", created=1.0, **extra) -> Job:
    return Job(id=job_id, project=project, version=version, run_name=f"run-{job_id}", run_dir=Path("/r") / job_id,
               status=status, created=created, **extra)


def test_the_shown_job_is_the_chosen_one_else_the_running_one_else_the_versions_latest():
    jobs = [job("a", "running", "other"), job("b", "queued"), job("c", "completed", finished=9.0)]
    assert actions.focus_job(jobs, "b", "テスト/v1").id == "b"
    assert actions.focus_job(jobs, "gone", "テスト/v1").id == "a"
    idle = jobs[1:]
    assert actions.focus_job(idle, "", "テスト/v1").id == "c"  # ended at 9, after b was queued at 1
    assert actions.focus_job(idle, "", "テスト/v2") is None


def test_the_table_marks_the_shown_job_and_the_queue_places():
    jobs = [job("a", "running", cancel_requests=1), job("b", "queued"), job("c", "queued"),
            job("d", "failed", grid_values={"learning_rate": 0.001})]
    table = actions.queue_table(jobs, "c")
    assert table.headers == actions.QUEUE_HEADERS
    assert [row[1] for row in table.rows] == ["stopping", "queued #1", "queued #2", "failed"]
    assert [row[0] for row in table.rows] == ["", "", "▶", ""]
    assert table.rows[3][4] == "learning_rate 0.001"


def test_a_click_on_a_row_shows_that_job():
    assert actions.select_row(["a", "b"], [1, 3]).values == ("b",)
    assert actions.select_row(["a"], [5, 0]).values[0] is actions.NO_CHANGE
    assert actions.select_row([], None).values[0] is actions.NO_CHANGE


def test_move_up_and_down_and_remove(queue_services):
    selection = trainable(queue_services, grid_network_dim=["4", "8", "16"])
    progress_actions.add_to_queue(queue_services, selection)
    ids = {j.run_name: j.id for j in queue_services.queue.jobs()}
    last = ids["テスト-v1-net-16"]
    reply = actions.move_job(queue_services, last, selection, -1)
    assert "now number 2 in the queue" in reply.notice.text and reply.values == (last,)
    actions.move_job(queue_services, last, selection, -1)
    assert [j.run_name for j in queue_services.queue.jobs()] == ["テスト-v1-net-16", "テスト-v1-net-4",
                                                                 "テスト-v1-net-8"]
    run_dir = queue_services.queue.get(last).run_dir
    reply = actions.remove_job(queue_services, last, selection)
    assert "nothing was trained yet" in reply.notice.text and reply.values == ("",)
    assert not run_dir.exists() and len(queue_services.queue.jobs()) == 2


def test_actions_without_a_job_say_what_to_do(queue_services):
    with pytest.raises(ValueError, match="press Begin train first"):
        actions.move_job(queue_services, "", "テスト/v1", 1)
    assert actions.show_running(queue_services, "テスト/v1").notice.text == "nothing is training now"
