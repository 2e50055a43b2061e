"""Over-long captions: one warning per run from the trainer's data, and a per-image list for the dataset view."""

from __future__ import annotations

import pytest

from lib_train_tools.datasets.caption_tokens import long_captions
from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess
from lib_train_tools.datasets.upload import upload
from lib_train_tools.models.tokenizer import CLIP_L_PAD_TOKEN_ID, ClipTokenizer
from lib_train_tools.projects import Store
from lib_train_tools.projects.settings import save_settings
from lib_train_tools.train.data import CaptionOptions, DataOptions, TrainingDataset
from lib_train_tools.train.data.caption_checks import count_tokens, token_limit, token_windows, trained_text

from .data.helpers import SMALL_BUCKETS, write_caption, write_image


def words(count: int) -> str:
    """A caption of exactly ``count`` CLIP tokens."""
    return " ".join(["red"] * count)


def dataset_with(tmp_path, captions: dict[str, str], **caption_options) -> TrainingDataset:
    for name, text in captions.items():
        write_caption(write_image(tmp_path / "train" / "2_sks" / f"{name}.png", (32, 32)), text)
    options = DataOptions(train_dir=tmp_path / "train", buckets=SMALL_BUCKETS,
                          captions=CaptionOptions(**caption_options))
    return TrainingDataset.from_folders(options)


def test_count_matches_what_the_tokenizer_cuts():
    tokenizer = ClipTokenizer(CLIP_L_PAD_TOKEN_ID)
    for count in (74, 75, 76, 151):
        text = words(count)
        assert count_tokens(text) == count
        kept = tokenizer.pad_sequence(text, 1)[1:].index(tokenizer.eos_token_id)
        assert (count_tokens(text) > token_limit(1)) == (kept < count)
    assert [token_windows(v) for v in (None, 75, 150, 225)] == [1, 1, 2, 3]


def test_one_warning_names_count_limit_and_the_longer_options(tmp_path):
    dataset = dataset_with(tmp_path, {"a": words(10), "b": words(90), "c": words(120)})
    (warning,) = dataset.caption_warnings(token_windows=1)
    assert warning.startswith("2 of 3 captions are longer than the 75 tokens the text encoder reads")
    assert "max_token_length 75: 1 window of 75" in warning
    assert "longest: c.png, 120 tokens" in warning
    assert "set max_token_length to 150 or 225 to keep more (150 keeps every word)" in warning
    assert dataset.caption_warnings(token_windows=2) == []


def test_prefix_and_suffix_count_and_the_last_window_says_shorten(tmp_path):
    dataset = dataset_with(tmp_path, {"a": words(220), "b": words(240)}, prefix="sks", suffix="photo")
    assert count_tokens(trained_text(dataset.items[0].caption, dataset.options.captions)) == 222
    (at_two,) = dataset.caption_warnings(token_windows=2)
    assert at_two.startswith("2 of 2 captions are longer than the 150 tokens") and "2 windows of 75" in at_two
    assert "longest: b.png, 242 tokens" in at_two and "set max_token_length to 225 to keep more, or shorten" in at_two
    (at_three,) = dataset.caption_warnings(token_windows=3)
    assert at_three.startswith("1 of 2 captions are longer than the 225 tokens") and "3 windows of 75" in at_three
    assert "225 is the most max_token_length allows: shorten those captions" in at_three


def test_dataset_view_lists_long_captions_with_token_counts(tmp_path):
    store = Store(tmp_path / "root")
    store.create_project("proj")
    store.create_version("proj", "v1")
    version = store.version("proj", "v1")
    for name, count in (("short", 5), ("long", 80), ("longer", 160)):
        write_caption(write_image(tmp_path / "up" / f"{name}.png", (32, 32)), words(count))
    upload(version, sorted((tmp_path / "up").iterdir()))
    assert long_captions(version) == []  # not preprocessed yet
    preprocess(version, PreprocessOptions(width=64, height=64))
    found = long_captions(version)
    assert [(c.image, c.tokens, c.limit) for c in found] == [("longer", 160, 75), ("long", 80, 75)]
    assert found[0].note == ("160 tokens, only the first 75 are trained: set max_token_length to 150 or 225 "
                             "to keep more (225 keeps every word), or shorten those captions")
    save_settings(version, {"max_token_length": 150, "caption_prefix": "sks"})
    assert [(c.image, c.tokens, c.limit) for c in long_captions(version)] == [("longer", 161, 150)]
    assert [c.image for c in long_captions(version, max_token_length=225)] == []


@pytest.mark.parametrize("windows", [1, 2])
def test_warning_counts_images_in_use_once(tmp_path, windows):
    dataset = dataset_with(tmp_path, {"a": words(200), "b": words(200)})
    warnings = dataset.caption_warnings(token_windows=windows)
    assert len(warnings) == 1 and warnings[0].startswith("2 of 2 captions")
