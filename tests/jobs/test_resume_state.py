"""A job resumes from its newest complete state, even when a killed save left it under a temporary name."""

from __future__ import annotations

import json
from pathlib import Path

from lib_train_tools.train.state_folders import newest_complete_state


def _state(folder: Path, step: int | None, saved_at: float = 1.0) -> Path:
    folder.mkdir(parents=True)
    (folder / "state.pt").write_bytes(b"tensors")
    if step is not None:  # without train_state.json (written last) the state is incomplete
        (folder / "train_state.json").write_text(json.dumps({"step": step, "saved_at": saved_at}), encoding="utf-8")
    return folder


def test_newest_complete_state_skips_incomplete_folders(tmp_path):
    _state(tmp_path / "x-state", None)
    _state(tmp_path / "x-state.old", 2)                       # older trainers' names
    newest = _state(tmp_path / ".tt-tmp-x-state.12-abcdef12.tmp", 4)
    _state(tmp_path / ".tt-tmp-x-state.13-abcdef13.tmp", None)
    _state(tmp_path / "y-state", 9)                           # another run's
    (tmp_path / "x-state.tmp").mkdir()
    (tmp_path / "x-state.tmp" / "train_state.json").write_text('{"step": 7', encoding="utf-8")  # half-written
    assert newest_complete_state(tmp_path, "x") == newest
    assert newest_complete_state(tmp_path, "z") is None


def test_the_regular_folder_wins_a_tie(tmp_path):
    regular = _state(tmp_path / "x-state", 4, saved_at=1.0)
    _state(tmp_path / ".tt-tmp-x-state.12-abcdef12.tmp", 4, saved_at=2.0)
    assert newest_complete_state(tmp_path, "x") == regular


def test_the_queue_resumes_from_the_newest_complete_state(make_queue, version, base_model):
    queue = make_queue()
    job = queue.submit(version, {"base_model": str(base_model), "training_comment": "steps=4;resume_steps=1"})[0]
    queue.cancel(job.id)  # cancelled before it started; now give it the folders a killed save leaves
    assert not queue.can_resume(job.id)
    _state(job.run_dir / f"{job.run_name}-state", None)  # the newest save never finished
    older = _state(job.run_dir / f"{job.run_name}-state.old", 2)
    assert queue.can_resume(job.id)
    assert queue.resume(job.id).resume_from == str(older)
    queue.start()
    done = queue.wait(job.id, timeout=60)
    assert done.status == "completed", (done.message, queue.log_tail(job.id))
    assert queue.progress(job.id).step == 3


def test_a_job_whose_state_is_only_under_a_temporary_name_is_resumable(make_queue, version, base_model):
    queue = make_queue()
    job = queue.submit(version, {"base_model": str(base_model), "training_comment": "steps=2"})[0]
    queue.cancel(job.id)
    leftover = _state(job.run_dir / f".tt-tmp-{job.run_name}-state.99-abcdef12.tmp", 2)  # killed between renames
    assert queue.can_resume(job.id)
    assert queue.resume(job.id).resume_from == str(leftover)
