"""The whole API flow on the real job queue and trainer: the tiny generated SD1 model at 64 px.

Create a project and version, upload images with captions, preprocess, start a job, follow its
events until it completes, list the run, publish its final file, and find it with its card in the
LoRA folder. The same flow the WebUI check (tests/webui/check_webui.py) runs inside a real WebUI.
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi import FastAPI

from lib_train_tools.api.mount import mount_api
from lib_train_tools.host.standalone import StandaloneHost
from lib_train_tools.models.checkpoint_factory import write_checkpoint
from lib_train_tools.services import create_services

from .asgi_client import AsgiClient
from .fakes import png_bytes

P = "/train-tools/v1"


@pytest.fixture
def api(tmp_path):
    write_checkpoint(tmp_path / "models" / "tiny-sd1.safetensors", family="sd1", seed=3)
    host = StandaloneHost(tmp_path / "out", tmp_path / "models", tmp_path / "Lora")
    services = create_services(host, start_queue=True)
    app = FastAPI()
    mount_api(app, services)
    yield AsgiClient(app), services, tmp_path
    services.queue.shutdown(timeout=60)


def test_train_and_publish_through_the_api(api):
    client, services, tmp_path = api
    assert client.get(f"{P}/checkpoints").json() == [
        {"title": "tiny-sd1.safetensors", "path": str(tmp_path / "models" / "tiny-sd1.safetensors")}]
    client.post(f"{P}/projects", json={"name": "猫"})
    client.post(f"{P}/projects/猫/versions", json={"name": "v1"})
    base = f"{P}/projects/猫/versions/v1"
    files = []
    for number, colour in enumerate([(250, 0, 0), (0, 250, 0), (0, 0, 250)], start=1):
        files += [("files", (f"{number}.png", png_bytes(colour, (80, 80)), "image/png")),
                  ("files", (f"{number}.txt", f"ttcat, colour {number}".encode(), "text/plain"))]
    assert len(client.post(f"{base}/dataset", files=files).json()["added"]) == 6
    client.post(f"{base}/dataset/preprocess", json={"width": 64, "height": 64, "mode": "crop", "repeats": 1})
    settings = {"base_model": "tiny-sd1.safetensors", "resolution": "64", "max_train_epochs": 2,
                "network_dim": 4, "network_alpha": 2, "learning_rate": 1e-3, "seed": 1, "save_state": False,
                "activation_tag": "ttcat"}
    submitted = client.post(f"{P}/jobs", json={"project": "猫", "version": "v1", "settings": settings})
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()[0]["id"]

    events, since, deadline = [], 0, time.monotonic() + 300
    while time.monotonic() < deadline:
        page = client.get(f"{P}/jobs/{job_id}/events", params={"since": since}).json()
        events += page["events"]
        since = page["next"]
        if page["status"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    job = client.get(f"{P}/jobs/{job_id}").json()
    assert job["status"] == "completed", client.get(f"{P}/jobs/{job_id}/log", params={"lines": 60}).json()["text"]
    events += client.get(f"{P}/jobs/{job_id}/events", params={"since": since}).json()["events"]
    kinds = [e.get("type") for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 6
    assert job["progress"]["step"] == 6

    [run] = client.get(f"{base}/runs").json()
    assert run["name"] == job["run_name"] and run["final"] is not None
    # the run hooks published the final file as 猫-v1 (auto-publish is on by default); Publish
    # through the API then takes the next free name
    assert (tmp_path / "Lora" / "猫-v1.safetensors").is_file()
    published = client.post(f"{P}/publish", json={"project": "猫", "version": "v1", "run": run["name"]})
    assert published.status_code == 201, published.text
    assert published.json()["name"] == "猫-v1-2"
    card = json.loads((tmp_path / "Lora" / "猫-v1-2.json").read_text(encoding="utf-8"))
    assert card["activation text"] == "ttcat" and card["sd version"] == "SD1"
    again = client.post(f"{P}/publish", json={"project": "猫", "version": "v1", "run": run["name"], "name": "猫-v1"})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    epoch_file = next(c["path"] for c in run["checkpoints"] if c["epoch"] == 1)
    by_epoch = client.post(f"{P}/publish", json={"project": "猫", "version": "v1", "run": run["name"],
                                                "checkpoint": epoch_file.rsplit("/", 1)[-1], "name": "cat-e1"})
    assert by_epoch.status_code == 201 and (tmp_path / "Lora" / "cat-e1.safetensors").is_file()
    bad = client.post(f"{P}/publish", json={"project": "猫", "version": "v1", "run": "../x"})
    assert bad.status_code == 404
