"""Tests for lib_train_tools/train/data/images.py: exact crop and flip pixels, conditioning, errors."""

from __future__ import annotations

import random

import pytest
import torch
from PIL import Image

from lib_train_tools.train.data.buckets import BucketChoice
from lib_train_tools.train.data.errors import DataError
from lib_train_tools.train.data.images import load_rgb, prepare_image

from .helpers import write_image


def columns(pixels: torch.Tensor) -> list[int]:
    """Source column of every output column, decoded from the red ramp (red = 4 * column)."""
    red = ((pixels[0, 0] + 1.0) * 127.5).round().long()
    return (red // 4).tolist()


def rows(pixels: torch.Tensor) -> list[int]:
    green = ((pixels[1, :, 0] + 1.0) * 127.5).round().long()
    return (green // 4).tolist()


def test_centre_crop_exact_pixels_and_conditioning(tmp_path):
    path = write_image(tmp_path / "ramp.png", (48, 32))
    image = prepare_image(path, BucketChoice(bucket=(32, 32), resized=(48, 32)), flip=False)
    assert image.pixels.shape == (3, 32, 32) and image.pixels.dtype == torch.float32
    assert columns(image.pixels) == list(range(8, 40))
    assert rows(image.pixels) == list(range(32))
    assert image.original_size_hw == (32, 48)
    assert image.crop_top_left == (0, 8)
    assert image.target_size_hw == (32, 32)
    assert image.pixels[2].sub(200 / 127.5 - 1).abs().max() < 1e-6


def test_vertical_overhang_is_cropped_centred(tmp_path):
    path = write_image(tmp_path / "tall.png", (16, 40))
    image = prepare_image(path, BucketChoice(bucket=(16, 32), resized=(16, 40)), flip=False)
    assert rows(image.pixels) == list(range(4, 36))
    assert image.crop_top_left == (4, 0)


def test_random_crop_is_reproducible_and_reported(tmp_path):
    path = write_image(tmp_path / "ramp.png", (48, 16))
    choice = BucketChoice(bucket=(16, 16), resized=(48, 16))
    lefts = set()
    for seed in range(12):
        first = prepare_image(path, choice, flip=False, crop_rng=random.Random(seed))
        again = prepare_image(path, choice, flip=False, crop_rng=random.Random(seed))
        assert torch.equal(first.pixels, again.pixels)
        left = columns(first.pixels)[0]
        assert columns(first.pixels) == list(range(left, left + 16))
        assert first.crop_top_left == (0, left)
        lefts.add(left)
    assert len(lefts) > 3 and max(lefts) <= 32


def test_flip_mirrors_pixels_and_crop_left(tmp_path):
    path = write_image(tmp_path / "ramp.png", (48, 16))
    choice = BucketChoice(bucket=(16, 16), resized=(48, 16))
    plain = prepare_image(path, choice, flip=False, crop_rng=random.Random(1))
    mirrored = prepare_image(path, choice, flip=True, crop_rng=random.Random(1))
    left = columns(plain.pixels)[0]
    assert left != 16  # a non-centred window, so the mirrored offset differs
    assert columns(mirrored.pixels) == list(range(left + 15, left - 1, -1))
    assert torch.equal(mirrored.pixels, plain.pixels.flip(-1))
    assert mirrored.crop_top_left == (0, 48 - left - 16)


def test_resize_shrinks_and_enlarges(tmp_path):
    path = write_image(tmp_path / "solid.png", (40, 40), (100, 150, 250))
    small = prepare_image(path, BucketChoice((16, 16), (16, 16)), flip=False)
    large = prepare_image(path, BucketChoice((64, 64), (64, 64)), flip=False)
    expected = torch.tensor([100, 150, 250]).float().div(127.5).sub(1.0).view(3, 1, 1)
    assert small.pixels.shape == (3, 16, 16) and large.pixels.shape == (3, 64, 64)
    assert (small.pixels - expected).abs().max() < 1e-5
    assert (large.pixels - expected).abs().max() <= 1 / 127.5 + 1e-5
    assert large.original_size_hw == (40, 40)


def test_exif_orientation_and_rgb_conversion(tmp_path):
    rotated = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 24), (1, 2, 3)).save(rotated, exif=exif)
    assert load_rgb(rotated).size == (24, 40)
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (8, 8), (9, 8, 7, 0)).save(rgba)
    assert load_rgb(rgba).mode == "RGB"


def test_truncated_image_is_named(tmp_path):
    noise = torch.randint(0, 256, (64, 64, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    good = tmp_path / "noise.png"
    Image.fromarray(noise.numpy(), "RGB").save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="cannot read image") as info:
        prepare_image(broken, BucketChoice((64, 64), (64, 64)), flip=False)
    assert str(broken) in str(info.value)
