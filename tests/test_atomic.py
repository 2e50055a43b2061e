"""The one atomic-write helper (``lib_train_tools/atomic.py``) and the writers that use it.

A write goes to ``.tt-tmp-<name>.<pid>-<8 hex>.tmp`` next to the target and is renamed over it: the
final name holds the old file or the complete new one, a failed write leaves nothing behind, and the
result has the usual permissions of a new file (0o666 less the umask).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from lib_train_tools import atomic
from lib_train_tools.atomic import (
    TEMP_NAME_BYTES,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    create_json_once,
    read_json,
    temporary_sibling,
    temporary_target,
)

SCHEME = re.compile(r"\.tt-tmp-(?P<target>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp", re.DOTALL)
posix_modes = pytest.mark.skipif(os.name == "nt", reason="Windows has no permission bits to compare")


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


# ----- replacing -----
def test_a_write_replaces_the_file_and_leaves_only_it(tmp_path):
    target = tmp_path / "settings.json"
    target.write_text("old", encoding="utf-8")
    atomic_write_json(target, {"ナルト": 1})
    assert read_json(target) == {"ナルト": 1}
    assert os.listdir(tmp_path) == ["settings.json"]


def test_the_final_name_appears_only_when_the_write_is_complete(tmp_path):
    target = tmp_path / "sub" / "lora.safetensors"   # missing folders are made
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.exists() and not target.exists()
        tmp.write_bytes(b"whole")
        assert not target.exists()
    assert target.read_bytes() == b"whole" and os.listdir(target.parent) == ["lora.safetensors"]


@pytest.mark.parametrize("existing", [b"old", None])
def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path, existing):
    target = tmp_path / "a.png"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(RuntimeError, match="disk went away"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"hal")
            raise RuntimeError("disk went away")
    assert (target.read_bytes() if target.exists() else None) == existing
    assert os.listdir(tmp_path) == ([] if existing is None else ["a.png"])


def test_a_failed_rename_removes_the_temporary(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "in use", str(dst))

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write_bytes(tmp_path / "a.bin", b"data")
    assert os.listdir(tmp_path) == []


def test_only_the_byte_writers_flush_to_disk(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(atomic.os, "fsync", synced.append)
    with atomic_path(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"a")
    assert synced == []
    atomic_write_bytes(tmp_path / "b.bin", b"b")
    assert create_json_once(tmp_path / "c.json", {}) is True
    assert len(synced) == 2


def test_create_json_once_lets_the_first_writer_win(tmp_path):
    target = tmp_path / "meta.json"
    assert create_json_once(target, {"n": 1}) is True
    assert create_json_once(target, {"n": 2}) is False
    assert read_json(target) == {"n": 1} and os.listdir(tmp_path) == ["meta.json"]


# ----- permissions -----
@posix_modes
def test_the_result_has_the_mode_of_a_new_file_whatever_the_writer_did(tmp_path, umask_027):
    target = tmp_path / "lora.safetensors"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        os.chmod(tmp, 0o600)   # as recent safetensors versions write
    assert stat.S_IMODE(target.stat().st_mode) == umask_027
    atomic_write_bytes(tmp_path / "b.bin", b"b")
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == umask_027


@posix_modes
def test_without_create_the_name_is_free_and_the_writers_mode_stays(tmp_path):
    source = tmp_path / "source.safetensors"
    source.write_bytes(b"lora")
    os.chmod(source, 0o604)
    target = tmp_path / "staged" / "copy.safetensors"
    with atomic_path(target, create=False) as tmp:
        assert not tmp.exists()
        os.link(source, tmp)
    assert target.read_bytes() == b"lora" and stat.S_IMODE(target.stat().st_mode) == 0o604


# ----- temporary names -----
def test_temporary_names_follow_the_one_scheme(tmp_path):
    first, second = temporary_sibling(tmp_path / "x.toml"), temporary_sibling(tmp_path / "x.toml")
    assert first != second and first.parent == tmp_path
    match = SCHEME.fullmatch(first.name)
    assert match and match["target"] == "x.toml" and int(match["pid"]) == os.getpid()
    with atomic_path(tmp_path / "y.png") as tmp:
        assert SCHEME.fullmatch(tmp.name)["target"] == "y.png"


def test_long_names_are_shortened_to_whole_characters(tmp_path):
    name = "ナ" * 80 + ".safetensors"   # 252 bytes in UTF-8
    tmp = temporary_sibling(tmp_path / name)
    assert len(tmp.name.encode("utf-8")) <= 255
    target = temporary_target(tmp.name)
    assert name.startswith(target) and len(target.encode("utf-8")) <= TEMP_NAME_BYTES


def test_every_writer_uses_the_scheme(tmp_path, monkeypatch):
    from PIL import Image

    from lib_train_tools.host.lora_staging import LoraStaging
    from lib_train_tools.train.config import load_config, save_config
    from lib_train_tools.train.sample_images import save_sample
    from lib_train_tools.train.sample_prompts import SamplePrompt

    renamed = []
    replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: (renamed.append((Path(src), Path(dst))),
                                                                replace(src, dst)))
    cfg, _ = load_config(None, {"pretrained_model_name_or_path": "/m.safetensors", "train_data_dir": "/d",
                                "output_dir": "/o"})
    save_config(cfg, tmp_path / "config.toml")
    save_sample(Image.new("RGB", (8, 8)), tmp_path / "sample.png", SamplePrompt("a cat"))
    (tmp_path / "run.safetensors").write_bytes(b"lora")
    LoraStaging(tmp_path / "previews").stage(tmp_path / "run.safetensors")
    assert [dst.name for _, dst in renamed][:2] == ["config.toml", "sample.png"] and len(renamed) == 3
    for src, dst in renamed:
        assert src.parent == dst.parent and temporary_target(src.name) == dst.name, src.name


# ----- recognising leftovers -----
@pytest.mark.parametrize("name, target", [
    (".tt-tmp-x.safetensors.12-0123abcd.tmp", "x.safetensors"),
    (".tt-tmp-x-state.4567-89abcdef.tmp", "x-state"),
    (".tt-tmp-.x.12-0123abcd.tmp", ".x"),
    (".x.safetensors.12-0123abcd.tmp", "x.safetensors"),        # the older scheme, before .tt-tmp-
    (".x-state.old.1-00000000.tmp", "x-state.old"),
])
def test_leftovers_of_both_schemes_are_recognised(name, target):
    assert temporary_target(name) == target


@pytest.mark.parametrize("name", [
    "x.safetensors", "x.tmp", ".x.tmp", "x.safetensors.12-0123abcd.tmp", ".tt-tmp-x.12-0123abcd",
    ".tt-tmp-x.12-0123ABCD.tmp", ".tt-tmp-x.12-0123abc.tmp", ".tt-tmp-x.pid-0123abcd.tmp", ".x.12.tmp",
    ".0123456789abcdef0123456789abcdef.partial", ".tmp-12-0123abcd.toml", "x-state.tmp",
])
def test_nothing_else_is_taken_for_a_leftover(name):
    assert temporary_target(name) is None
