"""The job record: its file round trip and the trainer's file names it relies on."""

from __future__ import annotations

import json

import pytest

from lib_train_tools.jobs.job import Job, JobError, load_job


def make_job(tmp_path, **changes) -> Job:
    fields = dict(id="abc123", project="猫", version="v1", run_name="猫-v1-lr-0_0001", run_dir=tmp_path / "run",
                  created=10.0, grid_values={"learning_rate": 1e-4})
    fields.update(changes)
    return Job(**fields)


def test_round_trip_through_job_json(tmp_path):
    job = make_job(tmp_path, status="failed", exit_code=3, message="no images", hint="add some")
    job.save()
    data = json.loads((tmp_path / "run" / "job.json").read_text(encoding="utf-8"))
    assert data["project"] == "猫" and data["run_dir"] == str(tmp_path / "run")
    assert load_job(tmp_path / "run") == job


def test_a_moved_run_folder_is_found_where_it_is(tmp_path):
    make_job(tmp_path).save()
    (tmp_path / "run").rename(tmp_path / "moved")
    assert load_job(tmp_path / "moved").run_dir == tmp_path / "moved"


def test_bad_records(tmp_path):
    with pytest.raises(JobError, match="status"):
        make_job(tmp_path, status="paused")
    with pytest.raises(JobError, match="lacks run_name"):
        Job.from_dict({"id": "x", "project": "p", "version": "v", "run_dir": "/x"})
    with pytest.raises(JobError, match="no job record"):
        load_job(tmp_path / "nothing")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "job.json").write_text("{", encoding="utf-8")
    with pytest.raises(JobError, match="cannot read"):
        load_job(tmp_path / "broken")


def test_newer_records_with_unknown_keys_still_load(tmp_path):
    data = make_job(tmp_path).to_dict() | {"added_later": 1}
    assert Job.from_dict(data).run_name == "猫-v1-lr-0_0001"


def test_state_folder_is_the_trainers(tmp_path):
    from lib_train_tools.train.saving import state_dir

    job = make_job(tmp_path)
    assert job.state_dir == state_dir(job.run_dir, job.run_name)
