"""One rule for an image without caption text, in preprocessing and in the trainer: the folder's name.

Preprocessing writes no caption file for an empty caption; the trainer treats an empty caption
file like a missing one (the folder's class tokens) and says so once, with how many.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess
from lib_train_tools.datasets.tag_curation import edit_caption
from lib_train_tools.datasets.upload import upload
from lib_train_tools.projects import Store
from lib_train_tools.train.data import DataOptions, TrainingDataset, scan_dataset

from .data.helpers import SMALL_BUCKETS, write_caption, write_image


@pytest.fixture
def version(tmp_path):
    store = Store(tmp_path / "root")
    store.create_project("my char")
    store.create_version("my char", "v1")
    return store.version("my char", "v1")


def _upload(version, folder: Path, captions: dict[str, str | None]) -> None:
    for name, caption in captions.items():
        image = write_image(folder / f"{name}.png", (32, 32))
        if caption is not None:
            write_caption(image, caption)
    upload(version, sorted(folder.iterdir()))


def _dataset(version) -> TrainingDataset:
    return TrainingDataset.from_folders(DataOptions(train_dir=version.processed_parent, buckets=SMALL_BUCKETS))


def test_uncaptioned_upload_gets_no_caption_file_and_trains_with_the_folder_name(version, tmp_path):
    _upload(version, tmp_path / "up", {"plain": None, "blank": "  \n", "tagged": "1girl, smile"})
    result = preprocess(version, PreprocessOptions(width=64, height=64))
    assert sorted(p.name for p in result.folder.iterdir()) == ["blank.png", "plain.png", "tagged.png", "tagged.txt"]
    dataset = _dataset(version)
    captions = {item.path.stem: item.caption for item in dataset.items}
    assert captions == {"blank": "my char", "plain": "my char", "tagged": "1girl, smile"}
    assert dataset.caption_warnings() == []


def test_caption_emptied_in_the_tag_editor_removes_the_file_and_comes_back(version, tmp_path):
    _upload(version, tmp_path / "up", {"a": "1girl"})
    folder = preprocess(version, PreprocessOptions(width=64, height=64)).folder
    edit_caption(version, "a", "")
    assert not (folder / "a.txt").exists()
    assert _dataset(version).items[0].caption == "my char"
    edit_caption(version, "a", "solo")
    assert (folder / "a.txt").read_text(encoding="utf-8") == "solo"


def test_trainer_uses_class_tokens_for_empty_caption_files_with_one_warning(tmp_path):
    folder = tmp_path / "train" / "3_sks dog"
    write_caption(write_image(folder / "a.png", (32, 32)), "")
    write_caption(write_image(folder / "b.png", (32, 32)), " \n\n")
    write_caption(write_image(folder / "c.png", (32, 32)), "a dog on grass")
    write_image(folder / "d.png", (32, 32))
    items = {item.path.stem: item for item in scan_dataset(tmp_path / "train")}
    assert {k: v.caption for k, v in items.items()} == {"a": "sks dog", "b": "sks dog", "c": "a dog on grass",
                                                        "d": "sks dog"}
    assert [k for k, v in items.items() if v.empty_caption_file] == ["a", "b"]
    dataset = TrainingDataset.from_folders(DataOptions(train_dir=tmp_path / "train", buckets=SMALL_BUCKETS))
    (warning,) = dataset.caption_warnings()
    assert warning.startswith(f"2 caption files are empty (e.g. '{folder / 'a.txt'}')")
    assert "trained with their folder's name (class tokens) as the caption" in warning
