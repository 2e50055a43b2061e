"""Tests for publishing a checkpoint to the LoRA folder with the WebUI card files."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from lib_train_tools.results import publish as publish_module
from lib_train_tools.results.publish import (
    PublishConflict, PublishError, auto_publish, default_notes, default_publish_name, free_name, publish,
)


@pytest.fixture()
def lora_dir(tmp_path):
    return tmp_path / "models" / "Lora"


def _preview(path, colour=(10, 120, 200), image_format="PNG"):
    image = Image.new("RGB", (32, 32), colour)
    image.save(path, format=image_format)
    return path


def test_round_trip_writes_the_file_and_the_card(lora_files, lora_dir, tmp_path) -> None:
    target = publish(lora_files["a"], lora_dir, "sks-dog", activation_text=" sks dog ", preferred_weight=0.8,
                     notes="epoch 1 of run1", preview_image=_preview(tmp_path / "cell.png"))
    assert target == lora_dir / "sks-dog.safetensors"
    assert target.read_bytes() == lora_files["a"].read_bytes()
    card = json.loads((lora_dir / "sks-dog.json").read_text(encoding="utf-8"))
    assert card == {"description": "", "sd version": "SD1", "activation text": "sks dog",
                    "preferred weight": 0.8, "negative text": "", "notes": "epoch 1 of run1"}
    assert (lora_dir / "sks-dog.json").read_text(encoding="utf-8").startswith('{\n    "description"')  # indent 4
    with Image.open(lora_dir / "sks-dog.preview.png") as preview:
        assert preview.format == "PNG" and preview.getpixel((0, 0)) == (10, 120, 200)
    assert sorted(p.name for p in lora_dir.iterdir()) == ["sks-dog.json", "sks-dog.preview.png",
                                                           "sks-dog.safetensors"]


def test_taken_name_raises_with_the_existing_path_until_overwrite(lora_files, lora_dir, tmp_path) -> None:
    publish(lora_files["a"], lora_dir, "mine", activation_text="old", preview_image=_preview(tmp_path / "a.png"))
    (lora_dir / "mine.json").write_text(json.dumps({"activation text": "old", "other tool": 1}), encoding="utf-8")
    with pytest.raises(PublishConflict) as conflict:
        publish(lora_files["b"], lora_dir, "mine", activation_text="new")
    assert conflict.value.existing == lora_dir / "mine.safetensors" and conflict.value.name == "mine"
    assert (lora_dir / "mine.safetensors").read_bytes() == lora_files["a"].read_bytes()    # untouched
    publish(lora_files["b"], lora_dir, "mine", activation_text="new", sd_version="SD2", overwrite=True)
    assert (lora_dir / "mine.safetensors").read_bytes() == lora_files["b"].read_bytes()
    card = json.loads((lora_dir / "mine.json").read_text(encoding="utf-8"))
    assert card["activation text"] == "new" and card["sd version"] == "SD2" and card["other tool"] == 1
    assert [p.name for p in lora_dir.iterdir() if p.name.startswith(".")] == []


def test_free_name_numbering_and_other_ways_a_name_is_taken(lora_files, lora_dir) -> None:
    assert free_name(lora_dir, "proj-v1") == "proj-v1"              # the folder does not even exist yet
    publish(lora_files["a"], lora_dir, "proj-v1")
    publish(lora_files["a"], lora_dir, "proj-v1-2")
    assert free_name(lora_dir, "proj-v1") == "proj-v1-3"
    (lora_dir / "proj-v1-3.json").write_text("{}", encoding="utf-8")     # a card left behind
    (lora_dir / "sub").mkdir()
    (lora_dir / "sub" / "PROJ-V1-4.pt").write_bytes(b"x")                # the WebUI ignores folders
    assert free_name(lora_dir, "proj-v1") == "proj-v1-5"
    with pytest.raises(PublishConflict) as conflict:
        publish(lora_files["a"], lora_dir, "proj-v1-4")
    assert conflict.value.existing == lora_dir / "sub" / "PROJ-V1-4.pt"


def test_japanese_and_emoji_names_and_bad_names(lora_files, lora_dir) -> None:
    target = publish(lora_files["a"], lora_dir, "猫耳の少女 🐱", activation_text="猫耳")
    assert target.name == "猫耳の少女 🐱.safetensors"
    card = (lora_dir / "猫耳の少女 🐱.json").read_text(encoding="utf-8")
    assert '"activation text": "猫耳"' in card                        # written as text, not \u escapes
    assert publish(lora_files["a"], lora_dir, "typed.safetensors").name == "typed.safetensors"
    for bad, reason in [("", "empty"), ("a/b", "slash"), ("a:b", "':'"), ("x>", "'>'"), (".hidden", "dot")]:
        with pytest.raises(PublishError, match=reason):
            publish(lora_files["a"], lora_dir, bad)


def test_bad_inputs_are_refused_before_anything_is_written(lora_files, lora_dir, tmp_path) -> None:
    with pytest.raises(PublishError, match="not found"):
        publish(tmp_path / "gone.safetensors", lora_dir, "x")
    pt = tmp_path / "old.pt"
    pt.write_bytes(b"x")
    with pytest.raises(PublishError, match="only .safetensors"):
        publish(pt, lora_dir, "x")
    with pytest.raises(PublishError, match="sd version"):
        publish(lora_files["a"], lora_dir, "x", sd_version="SD3")
    with pytest.raises(PublishError, match="preferred weight"):
        publish(lora_files["a"], lora_dir, "x", preferred_weight=float("inf"))
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello", encoding="utf-8")
    with pytest.raises(PublishError, match="cannot be read as an image"):
        publish(lora_files["a"], lora_dir, "x", preview_image=not_image)
    assert not lora_dir.exists() or list(lora_dir.iterdir()) == []


def test_jpeg_preview_is_converted_and_a_failed_copy_leaves_nothing(lora_files, lora_dir, tmp_path,
                                                                       monkeypatch) -> None:
    publish(lora_files["a"], lora_dir, "jpg", preview_image=_preview(tmp_path / "s.jpg", image_format="JPEG"))
    with Image.open(lora_dir / "jpg.preview.png") as preview:
        assert preview.format == "PNG" and preview.size == (32, 32)

    def broken_copy(source, target):
        with open(source, "rb") as src, open(target, "wb") as dst:
            dst.write(src.read(10))
        raise OSError("disk full")

    monkeypatch.setattr(publish_module.shutil, "copyfile", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        publish(lora_files["a"], lora_dir, "failed", preview_image=_preview(tmp_path / "c.png"))
    assert sorted(p.name for p in lora_dir.iterdir()) == ["jpg.json", "jpg.preview.png", "jpg.safetensors"]


def test_auto_publish_names(lora_files, lora_dir) -> None:
    first = auto_publish(lora_files["a"], lora_dir, "プロジェクト", "v1", activation_text="sks")
    second = auto_publish(lora_files["b"], lora_dir, "プロジェクト", "v1")
    assert (first.name, second.name) == ("プロジェクト-v1.safetensors", "プロジェクト-v1-2.safetensors")
    assert json.loads((lora_dir / "プロジェクト-v1.json").read_text(encoding="utf-8"))["activation text"] == "sks"
    long_name = default_publish_name("p" * 60, "v" * 60)
    assert len(long_name) == 76 and long_name.startswith("p" * 60 + "-")
    japanese = default_publish_name("猫" * 50, "版" * 20)  # 71 characters, 213 bytes in UTF-8
    assert len(japanese.encode("utf-8")) <= 196 and japanese.startswith("猫" * 50 + "-")
    assert free_name(lora_dir, japanese) == japanese


def test_default_notes() -> None:
    assert default_notes("犬", "v1", "run-bs-2", epoch=10, steps=800) == \
        "Trained with Train Tools: project '犬', version 'v1', run 'run-bs-2' (epoch 10, 800 steps)."
    assert default_notes("p", "v", "r") == "Trained with Train Tools: project 'p', version 'v', run 'r'."
