"""Tests for lib_train_tools/train/data/buckets.py: kohya's bucket list and assignment."""

from __future__ import annotations

import pytest

from lib_train_tools.train.data.buckets import BucketSpec, BucketTable, cover_size, make_bucket_list, shrink_to_area
from lib_train_tools.train.data.errors import DataError

# Worked by hand from the algorithm: for w = 256..1024 step 64, h = min(1024, (262144 // w) // 64 * 64).
KOHYA_512 = [
    (256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640), (448, 576),
    (512, 512),
    (576, 448), (640, 384), (704, 320), (768, 320), (832, 256), (896, 256), (960, 256), (1024, 256),
]


def test_default_512_bucket_list_matches_kohya():
    assert make_bucket_list((512, 512), 256, 1024, 64) == KOHYA_512
    assert list(BucketTable.from_spec(BucketSpec()).buckets) == KOHYA_512


def test_sdxl_bucket_list_with_max_2048():
    buckets = make_bucket_list((1024, 1024), 256, 2048, 64)
    assert len(buckets) == 41
    for expected in [(832, 1216), (896, 1152), (960, 1088), (1024, 1024), (768, 1344), (640, 1536), (1536, 640)]:
        assert expected in buckets


def test_1024_with_default_max_has_one_side_1024():
    buckets = make_bucket_list((1024, 1024), 256, 1024, 64)
    assert len(buckets) == 25
    assert all(1024 in b for b in buckets)


def test_bounds_are_rounded_to_steps():
    spec = BucketSpec(min_size=200, max_size=1000)
    assert (spec.bucket_min, spec.bucket_max) == (192, 1024)


def test_assignment_picks_nearest_aspect_ratio_and_covers():
    table = BucketTable.from_spec(BucketSpec())
    wide = table.assign((1000, 800))  # AR 1.25: 576x448 (1.286) beats 512x512 and 640x384
    assert wide.bucket == (576, 448)
    assert wide.resized == (576, 461)  # scaled by 576/1000; height 460.8 rounds up
    tall = table.assign((600, 800))  # AR 0.75: 448x576 (0.778)
    assert tall.bucket == (448, 576)
    assert tall.resized == (448, 597)


def test_exact_bucket_size_is_kept_even_for_small_images():
    table = BucketTable.from_spec(BucketSpec())
    assert table.assign((320, 768)).resized == (320, 768)
    small = table.assign((100, 100))
    assert small.bucket == (512, 512) and small.resized == (512, 512)


def test_cover_size_never_falls_short():
    for size in [(333, 1000), (1001, 997), (17, 31)]:
        for bucket in KOHYA_512:
            resized = cover_size(size, bucket)
            assert resized[0] >= bucket[0] and resized[1] >= bucket[1]
            assert min(resized[0] - bucket[0], resized[1] - bucket[1]) <= 1


def test_no_upscale_keeps_small_images_and_floors_to_steps():
    table = BucketTable.from_spec(BucketSpec(no_upscale=True))
    choice = table.assign((300, 200))
    assert choice.resized == (300, 200) and choice.bucket == (256, 192)


def test_no_upscale_shrinks_large_images_to_area():
    table = BucketTable.from_spec(BucketSpec(no_upscale=True))
    assert table.assign((1024, 1024)).bucket == (512, 512)
    choice = table.assign((2000, 1000))  # AR 2: rounding the height (320) keeps AR exact: 640x320
    assert choice.resized == (640, 320) and choice.bucket == (640, 320)
    assert shrink_to_area((2000, 1000), 512 * 512, 64) == (640, 320)


def test_no_upscale_rejects_images_below_one_step():
    table = BucketTable.from_spec(BucketSpec(no_upscale=True))
    with pytest.raises(DataError, match="40x100.*64 px"):
        table.assign((40, 100))


def test_fixed_size_mode_uses_resolution_for_everything():
    table = BucketTable.from_spec(BucketSpec(resolution=(64, 48), enabled=False, min_size=64))
    assert table.buckets == ((64, 48),)
    choice = table.assign((200, 100))
    assert choice.bucket == (64, 48) and choice.resized == (96, 48)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"resolution": (512, 500)}, "multiples of 8"),
        ({"step": 12}, "bucket step 12"),
        ({"min_size": 768}, "within the bucket sizes"),
        ({"resolution": (1088, 1088)}, "within the bucket sizes"),
    ],
)
def test_invalid_specs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BucketSpec(**kwargs)
