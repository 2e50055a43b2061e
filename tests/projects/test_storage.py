"""Projects and versions on disk: create, list most recent first, rename, duplicate, trash, restore."""

from __future__ import annotations

import itertools
import json
import multiprocessing
from pathlib import Path

import pytest

from lib_train_tools.projects import (
    FileLock,
    InvalidNameError,
    LockTimeout,
    Store,
    StoreError,
    load_settings,
    save_settings,
    update_settings,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    ticks = itertools.count(1000)
    return Store(tmp_path / "root", clock=lambda: float(next(ticks)))


def test_create_version_makes_the_layout(store: Store):
    store.create_project("日本語プロジェクト 🎨")
    info = store.create_version("日本語プロジェクト 🎨", "初版")
    root = store.root / "projects" / "日本語プロジェクト 🎨" / "versions" / "初版"
    assert info.path == root
    for sub in ("dataset/origin", "dataset/processed", "dataset/reg", "trains"):
        assert (root / sub).is_dir()
    meta = json.loads((root / "version.json").read_text(encoding="utf-8"))
    assert meta["name"] == "初版" and len(meta["id"]) == 32


def test_listing_is_most_recent_first(store: Store):
    for name in ("a", "b", "c"):
        store.create_project(name)
    assert [p.name for p in store.list_projects()] == ["c", "b", "a"]
    store.create_version("a", "v1")  # a version change makes its project the most recent
    assert [p.name for p in store.list_projects()] == ["a", "c", "b"]
    store.create_version("a", "v2")
    store.touch(store.version("a", "v1"))
    assert [v.name for v in store.list_versions("a")] == ["v1", "v2"]
    assert store.list_projects()[0].version_count == 2


@pytest.mark.parametrize("bad", ["..", "a/b", "CON", ""])
def test_bad_names_are_refused_and_nothing_is_created(store: Store, bad: str):
    store.create_project("ok")
    with pytest.raises(InvalidNameError):
        store.create_project(bad)
    with pytest.raises(InvalidNameError):
        store.create_version("ok", bad)
    assert [p.name for p in store.list_projects()] == ["ok"]
    assert sorted(p.name for p in (store.root / "projects").iterdir()) == ["ok"]
    assert store.list_versions("ok") == []


def test_duplicate_names_ignore_case(store: Store):
    store.create_project("Alice")
    with pytest.raises(StoreError, match="already exists"):
        store.create_project("alice")


def test_rename_keeps_content_and_lock_identity(store: Store):
    store.create_project("p")
    store.create_version("p", "v1")
    before = store.version("p", "v1")
    (before.origin / "a.png").write_bytes(b"x")
    store.rename_version("p", "v1", "первая")
    after = store.version("p", "первая")
    assert after.version_id == before.version_id
    assert (after.origin / "a.png").read_bytes() == b"x"
    assert not before.root.exists()
    store.rename_project("p", "q")
    assert (store.version("q", "первая").origin / "a.png").exists()
    with pytest.raises(StoreError, match="does not exist"):
        store.version("p", "первая")


def test_duplicate_copies_settings_and_dataset_but_not_runs(store: Store):
    store.create_project("p")
    store.create_version("p", "v1")
    source = store.version("p", "v1")
    (source.origin / "a.png").write_bytes(b"img")
    (source.trains / "run1").mkdir()
    save_settings(source, {"learning_rate": 1e-4, "keep_tokens": 1})
    copy = store.duplicate_version("p", "v1", "v2")
    copied = store.version("p", "v2")
    assert copy.version_id != source.version_id
    assert (copied.origin / "a.png").read_bytes() == b"img"
    assert load_settings(copied) == {"learning_rate": 1e-4, "keep_tokens": 1}
    assert list(copied.trains.iterdir()) == []
    assert not [p for p in copied.root.parent.iterdir() if p.name.startswith(".")]


def test_delete_goes_to_trash_and_restores(store: Store):
    store.create_project("p")
    store.create_version("p", "v1")
    (store.version("p", "v1").origin / "a.png").write_bytes(b"img")
    entry = store.delete_version("p", "v1")
    assert store.list_versions("p") == []
    assert [e.entry_id for e in store.list_trash()] == [entry.entry_id]
    assert entry.kind == "version" and entry.version == "v1"
    restored = store.restore(entry.entry_id)
    assert (restored / "dataset" / "origin" / "a.png").read_bytes() == b"img"
    assert store.list_trash() == []


def test_restore_refuses_a_taken_name_and_accepts_a_new_one(store: Store):
    store.create_project("p")
    store.create_version("p", "v1")
    entry = store.delete_version("p", "v1")
    store.create_version("p", "v1")
    with pytest.raises(StoreError, match="already exists"):
        store.restore(entry.entry_id)
    store.restore(entry.entry_id, new_name="v1 (restored)")
    assert sorted(v.name for v in store.list_versions("p")) == ["v1", "v1 (restored)"]


def test_delete_project_and_purge(store: Store):
    store.create_project("p")
    store.create_version("p", "v1")
    entry = store.delete_project("p")
    assert store.list_projects() == []
    store.purge(entry.entry_id)
    assert store.list_trash() == []
    with pytest.raises(StoreError, match="does not exist"):
        store.restore(entry.entry_id)


def test_settings_round_trip_and_merge(store: Store):
    store.create_project("p")
    store.create_version("p", "v1")
    version = store.version("p", "v1")
    assert load_settings(version) == {}
    save_settings(version, {"epochs": 10, "name": "ローラ"})
    assert update_settings(version, {"epochs": 12}) == {"epochs": 12, "name": "ローラ"}
    assert json.loads(version.settings_file.read_text(encoding="utf-8"))["name"] == "ローラ"


def test_a_held_lock_times_out_with_a_message(tmp_path: Path):
    with FileLock(tmp_path / "x.lock"):
        with pytest.raises(LockTimeout, match="version 'p'/'v1' is busy"):
            with FileLock(tmp_path / "x.lock", timeout=0.2, what="version 'p'/'v1'"):
                pass
    with FileLock(tmp_path / "x.lock", timeout=0.2):
        pass


def _add_keys(root: str, prefix: str, count: int) -> None:
    version = Store(root).version("p", "v1")
    for index in range(count):
        update_settings(version, {f"{prefix}{index}": index})


def test_two_processes_updating_settings_lose_nothing(store: Store):
    store.create_project("p")
    store.create_version("p", "v1")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_keys, args=(str(store.root), prefix, 15)) for prefix in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    settings = load_settings(store.version("p", "v1"))
    assert len(settings) == 30 and settings["a14"] == 14 and settings["b14"] == 14


def test_version_operations_keep_a_real_dataset_byte_for_byte(store: Store, tmp_path: Path):
    """Rename, duplicate, delete/restore of a version and its project, on 20 uploaded and processed images."""
    from lib_train_tools.datasets.preprocess import preprocess
    from lib_train_tools.datasets.upload import upload
    from tests.datasets.conftest import tree_hashes, write_dataset

    store.create_project("p")
    store.create_version("p", "v1")
    version = store.version("p", "v1")
    upload(version, write_dataset(tmp_path / "incoming"))
    preprocess(version)
    save_settings(version, {"keep_tokens": 1, "network_dim": 16})
    dataset = tree_hashes(version.dataset)
    assert len([k for k in dataset if k.startswith("origin/")]) == 40
    assert len([k for k in dataset if k.startswith("processed/25_p/")]) == 40

    store.rename_version("p", "v1", "版 2 🎨")
    renamed = store.version("p", "版 2 🎨")
    assert tree_hashes(renamed.dataset) == dataset and load_settings(renamed)["network_dim"] == 16

    store.duplicate_version("p", "版 2 🎨", "copy")
    copy = store.version("p", "copy")
    assert tree_hashes(copy.dataset) == dataset and load_settings(copy) == load_settings(renamed)
    (copy.origin / "img00.txt").write_text("changed in the copy", encoding="utf-8")
    assert tree_hashes(renamed.dataset) == dataset  # a real copy, not links

    entry = store.delete_version("p", "版 2 🎨")
    assert [v.name for v in store.list_versions("p")] == ["copy"]
    restored = store.restore(entry.entry_id)
    assert tree_hashes(restored / "dataset") == dataset

    store.rename_project("p", "プロジェクト")
    project_entry = store.delete_project("プロジェクト")
    assert store.list_projects() == []
    store.restore(project_entry.entry_id)
    back = store.version("プロジェクト", "版 2 🎨")
    assert tree_hashes(back.dataset) == dataset and back.version_id == version.version_id


@pytest.mark.parametrize("bad, reason", [("..", "parent folder"), ("a/b", "slash"), ("CON", "reserved device name"),
                                         ("", "empty")])
def test_renames_and_copies_to_bad_names_change_nothing(store: Store, bad: str, reason: str):
    store.create_project("p")
    store.create_version("p", "v1")
    (store.version("p", "v1").origin / "a.png").write_bytes(b"img")
    before = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if ".locks" not in p.parts)
    for action in (lambda: store.rename_project("p", bad), lambda: store.rename_version("p", "v1", bad),
                   lambda: store.duplicate_version("p", "v1", bad)):
        with pytest.raises(InvalidNameError, match=reason):
            action()
    after = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if ".locks" not in p.parts)
    assert after == before
    assert (store.version("p", "v1").origin / "a.png").read_bytes() == b"img"


def test_a_hand_made_version_gets_one_id_even_when_processes_race(store: Store, monkeypatch):
    store.create_project("p")
    folder = store.root / "projects" / "p" / "versions" / "copied by hand"
    (folder / "dataset" / "origin").mkdir(parents=True)
    first = store.version("p", "copied by hand")
    assert len(first.version_id) == 32 and first.lock_file.name == f"{first.version_id}.lock"
    assert store.version("p", "copied by hand").version_id == first.version_id
    # Another process wrote version.json after this one found none: its id must win, not a new one.
    from lib_train_tools.projects import storage

    (folder / "version.json").unlink()
    real_read = storage.read_json
    calls = []

    def read_late(path, default=None):
        calls.append(path)
        if len(calls) == 1:
            storage.atomic_write_json(path, {"name": "copied by hand", "id": "f" * 32, "created_at": 1.0,
                                             "updated_at": 1.0})
            return default  # what this process saw just before the other one wrote
        return real_read(path, default)

    monkeypatch.setattr(storage, "read_json", read_late)
    assert store.version("p", "copied by hand").version_id == "f" * 32
    monkeypatch.undo()
    assert store.version("p", "copied by hand").version_id == "f" * 32
