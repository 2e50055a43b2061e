"""Shared fixtures for the data-pipeline tests: a tiny train + reg folder tree."""

from __future__ import annotations

import pytest

from lib_train_tools.train.data.captions import CaptionOptions
from lib_train_tools.train.data.options import DataOptions

from .helpers import SMALL_BUCKETS, make_folder, write_caption, write_image

@pytest.fixture()
def options(tmp_path):
    train = tmp_path / "train" / "5_sks"
    write_caption(write_image(train / "a.png", (80, 48)), "sks, red hair, smile, outdoors")
    write_image(train / "b.png", (48, 80))
    write_image(train / "c.png", (64, 64))
    make_folder(tmp_path / "reg", "1_person", 2, size=(64, 64))
    return DataOptions(
        train_dir=tmp_path / "train",
        reg_dir=tmp_path / "reg",
        batch_size=2,
        seed=3,
        buckets=SMALL_BUCKETS,
        flip_aug=True,
        prior_loss_weight=0.5,
        captions=CaptionOptions(shuffle=True, keep_tokens=1),
    )
