"""Preprocessing carries each loss mask to its training images through the image's own geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess
from lib_train_tools.train.data.folders import list_images
from lib_train_tools.train.data.masks import find_mask
from lib_train_tools.ui.gallery import gallery_items

from .conftest import noise_image


def _random_mask(size: tuple[int, int], seed: int = 7) -> np.ndarray:
    """Per-pixel random 0 / 255 values: any shift or mirror by one pixel shows."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, size=(size[1], size[0])) * 255).astype(np.uint8)


def _put(version, name: str, image: Image.Image, mask: np.ndarray | None = None) -> None:
    version.origin.mkdir(parents=True, exist_ok=True)
    image.save(version.origin / name)
    if mask is not None:
        Image.fromarray(mask, "L").save(version.origin / (Path(name).stem + ".mask.png"))


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def test_a_centre_crop_and_its_flip_carry_the_mask_pixel_for_pixel(version) -> None:
    picture = noise_image(1, (96, 64))
    mask = _random_mask((96, 64))
    _put(version, "cat.png", picture, mask)
    result = preprocess(version, PreprocessOptions(width=64, height=64, mode="crop", flip_copies=True))
    assert sorted(result.outputs) == ["cat-flip.png", "cat.png"]  # the mask file is no image
    window = (slice(None), slice(16, 80))  # 96 wide, 64 kept: 16 columns cut on each side, no resize
    assert np.array_equal(_read(result.folder / "cat.png"), np.asarray(picture)[window])
    assert np.array_equal(_read(result.folder / "cat.mask.png"), mask[window])
    assert np.array_equal(_read(result.folder / "cat-flip.mask.png"), mask[window][:, ::-1])
    assert np.array_equal(_read(result.folder / "cat-flip.png"), np.asarray(picture)[window][:, ::-1])


def test_a_focal_crop_cuts_the_mask_at_the_image_window(version) -> None:
    canvas = np.full((64, 128, 3), 255, dtype=np.uint8)
    canvas[16:48, 100:124] = np.asarray(noise_image(3, (24, 32)))  # the detail is on the right
    mask = _random_mask((128, 64), seed=3)
    _put(version, "detail.png", Image.fromarray(canvas), mask)
    result = preprocess(version, PreprocessOptions(width=64, height=64, mode="crop", crop_anchor="focal"))
    image = _read(result.folder / "detail.png")
    offsets = [x for x in range(0, 65) if np.array_equal(canvas[:, x:x + 64], image)]
    assert offsets and offsets[0] > 32  # the window moved right, to the detail
    assert any(np.array_equal(_read(result.folder / "detail.mask.png"), mask[:, x:x + 64]) for x in offsets)


def test_split_pieces_each_get_their_part_of_the_mask(version) -> None:
    mask = _random_mask((256, 64), seed=5)
    _put(version, "long.png", noise_image(5, (256, 64)), mask)
    options = PreprocessOptions(width=64, height=64, mode="crop", split_ratio=2.0, split_overlap=0.2)
    result = preprocess(version, options)
    assert len(result.outputs) == 5
    starts = [round(i * (256 - 64) / 4) for i in range(5)]  # split_pieces: 5 pieces, evenly spread
    for index, start in enumerate(starts, start=1):
        assert np.array_equal(_read(result.folder / f"long-part{index}.mask.png"), mask[:, start:start + 64])


def test_a_resized_image_gets_its_mask_at_the_same_size(version) -> None:
    mask = np.zeros((64, 128), dtype=np.uint8)
    mask[:, 64:] = 255
    _put(version, "wide.jpg", noise_image(6, (128, 64)).convert("RGB"), mask)
    result = preprocess(version, PreprocessOptions(width=32, height=32))  # keep_aspect: shrinks to 45x22
    with Image.open(result.folder / "wide.png") as image:
        size = image.size
    carried = _read(result.folder / "wide.mask.png")
    assert (carried.shape[1], carried.shape[0]) == size and size[0] < 128
    half = size[0] // 2
    assert (carried[:, : half - 2] <= 8).all() and (carried[:, half + 2:] >= 247).all()


def test_the_alpha_channel_becomes_the_mask_file_of_the_flattened_image(version) -> None:
    rgba = np.asarray(noise_image(2, (64, 64), "RGBA")).copy()
    rgba[:, :24, 3] = 0
    rgba[:, 24:40, 3] = 100
    _put(version, "cut.png", Image.fromarray(rgba, "RGBA"))
    result = preprocess(version, PreprocessOptions(width=64, height=64, mode="crop", flip_copies=True))
    with Image.open(result.folder / "cut.png") as image:
        assert image.mode == "RGB"
    assert np.array_equal(_read(result.folder / "cut.mask.png"), rgba[:, :, 3])
    assert np.array_equal(_read(result.folder / "cut-flip.mask.png"), rgba[:, ::-1, 3])


def test_images_without_a_mask_get_no_mask_file(loaded) -> None:
    result = preprocess(loaded)
    assert not list(result.folder.glob("*.mask.png"))


def test_a_hand_placed_mask_of_the_wrong_size_refuses_its_image(version) -> None:
    _put(version, "ok.png", noise_image(1, (64, 64)))
    _put(version, "bad.png", noise_image(2, (64, 64)), np.zeros((32, 32), dtype=np.uint8))
    result = preprocess(version, PreprocessOptions(width=64, height=64))
    assert result.outputs == ("ok.png",)
    assert [r.name for r in result.refused] == ["bad.png"] and "must have its image's size" in result.refused[0].reason


@pytest.mark.parametrize("output_format", ["png", "jpg"])
def test_the_trainer_and_the_gallery_see_the_carried_masks(version, output_format: str) -> None:
    mask = _random_mask((64, 64))
    _put(version, "cat.png", noise_image(1, (64, 64)), mask)
    result = preprocess(version, PreprocessOptions(width=64, height=64, output_format=output_format,
                                                   flip_copies=True))
    images = list_images(result.folder)
    assert sorted(p.name for p in images) == sorted(result.outputs)  # the trainer: masks are no images
    assert sorted(i.path.name for i in gallery_items(version)[0]) == sorted(result.outputs)
    image_path = result.folder / f"cat.{output_format}"
    with Image.open(image_path) as image:
        found = find_mask(image_path, image)
    assert found is not None and np.array_equal(np.asarray(found), mask)
