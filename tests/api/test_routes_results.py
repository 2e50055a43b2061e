"""Checkpoints, runs and publish routes on hand-made run folders (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

P = "/train-tools/v1"
META = {"ss_base_model_version": "sd_v1", "modelspec.architecture": "stable-diffusion-v1/lora",
        "ss_output_name": "cat", "ss_tag_frequency": json.dumps({"1_cat": {"zqx": 2, "cat": 2}})}


def _lora(path: Path, epoch: int) -> Path:
    tensors = {"lora_unet_x.lora_down.weight": torch.zeros(4, 8), "lora_unet_x.lora_up.weight": torch.zeros(8, 4)}
    save_file(tensors, str(path), metadata={**META, "ss_epoch": str(epoch), "ss_steps": str(3 * epoch)})
    return path


@pytest.fixture
def run(services):
    services.store.create_project("Cat")
    services.store.create_version("Cat", "v1")
    version = services.store.version("Cat", "v1")
    folder = version.trains / "Cat-v1"
    folder.mkdir(parents=True)
    base = services.host.base
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".ckpt").write_bytes(b"not read")
    config = (f'[model_arguments]\npretrained_model_name_or_path = "{base.with_suffix(".ckpt")}"\n'
              '[training_arguments]\noutput_name = "cat"\n')
    (folder / "config.toml").write_text(config, encoding="utf-8")
    _lora(folder / "cat-000001.safetensors", 1)
    _lora(folder / "cat.safetensors", 2)
    (folder / "sample").mkdir()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / "sample" / "cat_e000002_00.png")
    from lib_train_tools.projects import update_settings

    update_settings(version, {"activation_tag": "zqx"})
    return folder


def test_checkpoints_come_from_the_host(client, services):
    assert client.get(f"{P}/checkpoints").json() == [{"title": "base.safetensors", "path": str(services.host.base)}]


def test_runs_list_the_files(client, run):
    [listed] = client.get(f"{P}/projects/Cat/versions/v1/runs").json()
    assert listed["name"] == "Cat-v1" and listed["final"]["path"].endswith("cat.safetensors")
    assert [Path(c["path"]).name for c in listed["checkpoints"]] == ["cat-000001.safetensors"]


def test_publish_the_final_file_with_its_card_and_tell_the_host(client, services, run):
    answer = client.post(f"{P}/publish", json={"project": "Cat", "version": "v1", "run": "Cat-v1"})
    assert answer.status_code == 201, answer.text
    lora_dir = services.host.lora_dir()
    assert answer.json() == {"name": "Cat-v1", "path": str(lora_dir / "Cat-v1.safetensors"),
                             "checkpoint": str(run / "cat.safetensors")}
    assert (lora_dir / "Cat-v1.safetensors").read_bytes() == (run / "cat.safetensors").read_bytes()
    card = json.loads((lora_dir / "Cat-v1.json").read_text(encoding="utf-8"))
    assert card["activation text"] == "zqx" and card["sd version"] == "SD1"
    assert "run 'Cat-v1'" in card["notes"] and "epoch 2" in card["notes"]
    assert Image.open(lora_dir / "Cat-v1.preview.png").getpixel((0, 0)) == (1, 2, 3)
    assert services.host.published == [lora_dir / "Cat-v1.safetensors"]


def test_publish_an_epoch_file_under_a_name_then_conflict_then_overwrite(client, services, run):
    body = {"project": "Cat", "version": "v1", "run": "Cat-v1", "checkpoint": "cat-000001.safetensors",
            "name": "mycat", "activation_text": "other", "notes": "hand-picked"}
    assert client.post(f"{P}/publish", json=body).status_code == 201
    card = json.loads((services.host.lora_dir() / "mycat.json").read_text(encoding="utf-8"))
    assert card["activation text"] == "other" and card["notes"] == "hand-picked"
    taken = client.post(f"{P}/publish", json=body)
    assert taken.status_code == 409 and "already exists" in taken.json()["detail"]
    assert client.post(f"{P}/publish", json={**body, "overwrite": True}).status_code == 201


def test_publish_refuses_what_is_not_a_file_of_the_run(client, run):
    base = {"project": "Cat", "version": "v1"}
    assert client.post(f"{P}/publish", json={**base, "run": "../../x"}).status_code == 404
    assert client.post(f"{P}/publish", json={**base, "run": "nope"}).status_code == 404
    missing = client.post(f"{P}/publish", json={**base, "run": "Cat-v1", "checkpoint": "../cat.safetensors"})
    assert missing.status_code == 404 and "cat-000001.safetensors" in missing.json()["detail"]
    bad_name = client.post(f"{P}/publish", json={**base, "run": "Cat-v1", "name": "a<b"})
    assert bad_name.status_code == 400
    assert client.post(f"{P}/publish", json={"project": "Cat", "run": "Cat-v1"}).status_code == 400


def test_publish_without_a_final_file_asks_for_an_epoch(client, run):
    (run / "cat.safetensors").unlink()
    answer = client.post(f"{P}/publish", json={"project": "Cat", "version": "v1", "run": "Cat-v1"})
    assert answer.status_code == 400 and "no final file yet" in answer.json()["detail"]


def test_preview_grid_through_the_host_renderer_which_is_closed_after(client, services, run):
    body = {"project": "Cat", "version": "v1", "run": "Cat-v1", "prompt": "zqx, a cat", "weights": [0, 1],
            "seeds": [7], "steps": 2, "width": 64, "height": 64}
    answer = client.post(f"{P}/previews", json=body)
    assert answer.status_code == 201, answer.text
    result = answer.json()
    assert Path(result["grid"]).is_file() and len(result["cells"]) == 4       # 2 files x 2 weights
    renderer = services.host.renderer
    assert renderer.closed and [r.weight for r in renderer.requests] == [0, 1, 0, 1]
    assert {Path(r.lora_path).name for r in renderer.requests} == {"cat-000001.safetensors", "cat.safetensors"}
    assert all(r.base_model == services.host.base.with_suffix(".ckpt") and r.seed == 7 for r in renderer.requests)
    one = client.post(f"{P}/previews", json={**body, "checkpoints": ["cat.safetensors"]}).json()
    assert len(one["cells"]) == 2


def test_preview_refuses_bad_settings_and_still_closes_the_renderer(client, services, run):
    base = {"project": "Cat", "version": "v1", "run": "Cat-v1"}
    unknown = client.post(f"{P}/previews", json={**base, "prompt": "p", "colour": "red"})
    assert unknown.status_code == 400 and "unknown preview settings: colour" in unknown.json()["detail"]
    empty = client.post(f"{P}/previews", json={**base, "prompt": " "})
    assert empty.status_code == 400 and "the prompt is empty" in empty.json()["detail"]
    assert services.host.renderer.closed
