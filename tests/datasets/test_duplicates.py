"""Exact and near duplicate groups; nothing is removed."""

from __future__ import annotations

import shutil

from PIL import ImageEnhance

from lib_train_tools.datasets.duplicates import find_duplicates
from lib_train_tools.datasets.origin_files import list_origin

from .conftest import noise_image


def test_exact_and_near_groups(loaded):
    shutil.copy(loaded.origin / "img03.png", loaded.origin / "copy of img03.png")
    near = noise_image(7, (96, 96))
    ImageEnhance.Brightness(near).enhance(1.05).save(loaded.origin / "img07 resized.jpg", quality=80)
    report = find_duplicates(loaded)
    assert report.exact == (("copy of img03.png", "img03.png"),)
    assert report.near == (("img07 resized.jpg", "img07.png"),)
    assert report.unreadable == ()
    assert len(list_origin(loaded)) == 22


def test_distinct_images_give_no_groups(loaded):
    seen = []
    report = find_duplicates(loaded, progress=lambda done, total, name: seen.append(done))
    assert report.exact == () and report.near == ()
    assert seen == list(range(1, 21))
