"""Staging LoRA files under unique, prompt-safe names (host/lora_staging.py)."""

from __future__ import annotations

import os
import re

from lib_train_tools.host.lora_staging import NAME_PREFIX, LoraStaging


def _file(folder, name, data=b"weights"):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_names_are_unique_per_file_and_prompt_safe(tmp_path):
    staging = LoraStaging(tmp_path / "Lora" / "previews")
    a = _file(tmp_path / "runA", "ねこ: v1 <best>-000001.safetensors")
    b = _file(tmp_path / "runB", "ねこ: v1 <best>-000001.safetensors")
    name_a, name_b = staging.stage(a), staging.stage(b)
    assert name_a != name_b
    for name in (name_a, name_b):
        assert name.startswith(NAME_PREFIX) and re.fullmatch(r"[A-Za-z0-9_-]+", name)
    assert (staging.folder / f"{name_a}.safetensors").read_bytes() == b"weights"
    assert staging.stage(a) == name_a


def test_a_rewritten_file_gets_a_new_name(tmp_path):
    staging = LoraStaging(tmp_path / "previews")
    lora = _file(tmp_path, "cat.safetensors")
    first = staging.stage(lora)
    lora.write_bytes(b"new weights!")
    os.utime(lora, ns=(1, 10**18))
    second = staging.stage(lora)
    assert first != second
    assert (staging.folder / f"{second}.safetensors").read_bytes() == b"new weights!"


def test_stale_files_go_and_clear_removes_leftovers_of_earlier_sessions(tmp_path):
    now = [1000.0]
    staging = LoraStaging(tmp_path / "previews", stale_after=60, clock=lambda: now[0])
    old = staging.stage(_file(tmp_path, "old.safetensors"))
    now[0] += 61
    staging.stage(_file(tmp_path, "new.safetensors", b"n"))
    assert not (staging.folder / f"{old}.safetensors").exists()
    (staging.folder / f"{NAME_PREFIX}from-yesterday.safetensors").write_bytes(b"x")
    (staging.folder / "users-own.safetensors").write_bytes(b"keep")
    (staging.folder / f".tt-tmp-{NAME_PREFIX}x.safetensors.12-0123abcd.tmp").write_bytes(b"half")  # a killed copy
    (staging.folder / ".0123456789abcdef0123456789abcdef.partial").write_bytes(b"half")  # older versions' name
    (staging.folder / "notes.tmp").write_bytes(b"keep")
    assert staging.clear() == 4
    assert sorted(p.name for p in staging.folder.iterdir()) == ["notes.tmp", "users-own.safetensors"]


def test_unstage_removes_links_at_once_and_keeps_copies(tmp_path, monkeypatch):
    staging = LoraStaging(tmp_path / "previews")
    source = _file(tmp_path, "a.safetensors")
    linked = staging.stage(source)
    staging.unstage(linked)
    assert not (staging.folder / f"{linked}.safetensors").exists()
    assert staging.stage(source) == linked      # linked again, same name
    assert (staging.folder / f"{linked}.safetensors").is_file()

    def no_links(source, target):
        raise OSError("cross-device link")

    monkeypatch.setattr("lib_train_tools.host.lora_staging.os.link", no_links)
    copied = staging.stage(_file(tmp_path, "b.safetensors", b"b"))
    staging.unstage(copied)
    assert (staging.folder / f"{copied}.safetensors").read_bytes() == b"b"
