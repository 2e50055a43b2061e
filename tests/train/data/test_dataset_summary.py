"""Tests for lib_train_tools/train/data/dataset_summary.py: kohya's metadata facts about the dataset."""

from __future__ import annotations

import json

import pytest

from lib_train_tools.train.data.dataset import TrainingDataset
from lib_train_tools.train.data.dataset_summary import summarise_dataset
from lib_train_tools.train.data.options import DataOptions

from .helpers import SMALL_BUCKETS, write_caption, write_image


def test_summary_of_train_and_reg_folders(options):
    summary = summarise_dataset(TrainingDataset.from_folders(options))
    assert summary.num_train_images == 15
    assert summary.num_reg_images == 2
    assert summary.dataset_dirs == {"5_sks": {"n_repeats": 5, "img_count": 3}}
    assert summary.reg_dataset_dirs == {"1_person": {"n_repeats": 1, "img_count": 2}}
    assert summary.tag_frequency == {
        "5_sks": {"sks": 3, "red hair": 1, "smile": 1, "outdoors": 1},
        "1_person": {"person": 2},
    }
    assert summary.bucket_info == {
        "buckets": {
            "0": {"resolution": [48, 80], "count": 5},
            "1": {"resolution": [64, 64], "count": 20},
            "2": {"resolution": [80, 48], "count": 5},
        },
        "mean_img_ar_error": 0.0,
    }
    json.dumps(summary.bucket_info)


def test_tags_are_lower_cased_and_ar_error_averaged(tmp_path):
    write_caption(write_image(tmp_path / "t" / "2_x" / "a.png", (70, 64)), "Sks, SMILE, ,smile")
    write_image(tmp_path / "t" / "2_x" / "b.png", (64, 64))
    options = DataOptions(train_dir=tmp_path / "t", buckets=SMALL_BUCKETS)
    summary = summarise_dataset(TrainingDataset.from_folders(options))
    assert summary.tag_frequency == {"2_x": {"sks": 1, "smile": 2, "x": 1}}
    assert summary.bucket_info["buckets"] == {"0": {"resolution": [64, 64], "count": 4}}
    assert summary.bucket_info["mean_img_ar_error"] == pytest.approx((70 / 64 - 1) / 2)
