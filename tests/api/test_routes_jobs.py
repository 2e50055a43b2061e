"""Job routes against a queue that records what it was asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib_train_tools.api.routes_jobs import read_events
from lib_train_tools.projects import load_settings

from .fakes import write_events

P = "/train-tools/v1"


@pytest.fixture
def version(services):
    services.store.create_project("Cat")
    services.store.create_version("Cat", "v1")
    return services.store.version("Cat", "v1")


def test_submit_saves_settings_then_queues_with_host_checkpoints(client, services, version):
    answer = client.post(f"{P}/jobs", json={"project": "Cat", "version": "v1",
                                           "settings": {"network_dim": 4, "base_model": "base.safetensors"}})
    assert answer.status_code == 201, answer.text
    assert [j["id"] for j in answer.json()] == ["job1"]
    submitted_version, configs, checkpoints = services.queue.submitted[0]
    assert submitted_version.root == version.root
    assert configs == {"network_dim": 4, "base_model": "base.safetensors"}
    assert checkpoints == {"base.safetensors": services.host.base}
    assert load_settings(version) == configs


def test_submit_to_missing_version_is_404_and_bad_settings_400(client, version):
    assert client.post(f"{P}/jobs", json={"project": "Cat", "version": "v9"}).status_code == 404
    bad = client.post(f"{P}/jobs", json={"project": "Cat", "version": "v1", "settings": [1, 2]})
    assert bad.status_code == 400 and "'settings' must be an object" in bad.json()["detail"]


def test_submit_library_error_is_400_even_when_it_mentions_a_missing_file(client, services, version):
    def refuse(*args, **kwargs):
        raise ValueError("base model /x.safetensors does not exist: choose another checkpoint")

    services.queue.submit = refuse
    answer = client.post(f"{P}/jobs", json={"project": "Cat", "version": "v1"})
    assert answer.status_code == 400 and "choose another checkpoint" in answer.json()["detail"]


def test_status_list_log_and_cancel(client, services, version):
    job_id = client.post(f"{P}/jobs", json={"project": "Cat", "version": "v1"}).json()[0]["id"]
    one = client.get(f"{P}/jobs/{job_id}").json()
    assert one["status"] == "queued" and one["progress"]["losses"] == [[1, 0.5], [2, 0.4]]
    listed = client.get(f"{P}/jobs").json()
    assert [j["id"] for j in listed] == [job_id] and "losses" not in listed[0]["progress"]
    assert client.get(f"{P}/jobs/{job_id}/log", params={"lines": 7}).json()["text"] == f"last 7 lines of {job_id}"
    cancelled = client.post(f"{P}/jobs/{job_id}/cancel")
    assert cancelled.json()["status"] == "cancelled" and services.queue.cancelled == [job_id]
    assert client.get(f"{P}/jobs/nope").status_code == 404
    assert client.post(f"{P}/jobs/nope/cancel").status_code == 404


def test_events_are_paged_by_line_and_a_partial_line_waits(client, services, version):
    job = client.post(f"{P}/jobs", json={"project": "Cat", "version": "v1"}).json()[0]
    progress = Path(job["run_dir"]) / "progress.jsonl"
    assert client.get(f"{P}/jobs/{job['id']}/events").json()["events"] == []
    write_events(progress, [{"type": "start", "total_steps": 4}, {"type": "step", "step": 1}],
                 partial='{"type": "st')
    first = client.get(f"{P}/jobs/{job['id']}/events").json()
    assert [e["type"] for e in first["events"]] == ["start", "step"] and first["next"] == 2
    with open(progress, "a", encoding="utf-8") as handle:
        handle.write('ep", "step": 2}\nnot json\n')
    second = client.get(f"{P}/jobs/{job['id']}/events", params={"since": first["next"]}).json()
    assert second["events"] == [{"type": "step", "step": 2}, {"type": "log", "text": "not json"}]
    assert second["next"] == 4


def test_read_events_caps_one_answer(tmp_path, monkeypatch):
    monkeypatch.setattr("lib_train_tools.api.routes_jobs.MAX_EVENTS", 3)
    path = tmp_path / "progress.jsonl"
    path.write_text("".join(json.dumps({"type": "step", "step": i}) + "\n" for i in range(5)))
    events, next_line = read_events(path, 1)
    assert [e["step"] for e in events] == [1, 2, 3] and next_line == 4
    assert read_events(path, 4) == ([{"type": "step", "step": 4}], 5)
