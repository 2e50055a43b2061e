"""Load one training image and turn it into a bucket-sized tensor.

Steps: open, apply the EXIF orientation, convert to 8-bit RGB (``train.color_modes``); resize
to the bucket choice's cover size (area averaging when shrinking, Lanczos when enlarging, like
kohya); crop the overhang (centred, or at a random offset with ``random_crop``); optionally
mirror horizontally; scale pixels to [-1, 1] as the VAE expects. With ``with_mask`` the loss mask
(``masks.py``) is read before the alpha is composited away and goes through the same resize, crop
and flip, then is area-averaged to the latent grid.

SDXL size conditioning is returned with it. ``crop_top_left`` is the real offset of the crop
window inside the resized (and, when flipped, mirrored) image, the definition SDXL was trained
with; kohya reports a different offset (its open issue #1443) and ignores random crops.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, cast

import numpy as np
import torch
from PIL import Image, ImageOps

from ..color_modes import WHITE, to_rgb
from .buckets import BucketChoice, Size
from .errors import DataError
from .masks import find_mask, latent_mask, mask_to_tensor


@dataclass(frozen=True)
class CropWindow:
    """Where the bucket-sized window sits in the resized image, before any flip: (left, top)."""

    left: int
    top: int


@dataclass(frozen=True)
class PreparedImage:
    """A training image: ``pixels`` (3, H, W) float32 in [-1, 1] plus SDXL size conditioning,
    each as (height, width) or (top, left) pairs; ``mask`` (1, H/8, W/8) in [0, 1] when a loss
    mask was asked for (all ones when the image has none)."""

    pixels: torch.Tensor
    original_size_hw: tuple[int, int]
    crop_top_left: tuple[int, int]
    target_size_hw: tuple[int, int]
    mask: Optional[torch.Tensor] = None


def load_rgb(path: Path) -> Image.Image:
    """Decode the whole image (EXIF-rotated, 8-bit RGB); DataError naming the file if it is corrupt.

    The conversion is preprocessing's (``train.color_modes.to_rgb``): 16-bit and float images
    are scaled, not clipped, and transparency is composited onto white.
    """
    return load_rgb_and_mask(path, False)[0]


def load_rgb_and_mask(path: Path, with_mask: bool) -> tuple[Image.Image, Optional[Image.Image]]:
    """``load_rgb``'s image plus, with ``with_mask``, its loss mask (``masks.find_mask``, read from
    the upright image before compositing), or None when it has none."""
    try:
        with Image.open(path) as img:
            img.load()
            # Optional only for in_place=True; otherwise the (possibly transposed) copy.
            upright = cast(Image.Image, ImageOps.exif_transpose(img))
            mask = find_mask(path, upright) if with_mask else None
            return to_rgb(upright, WHITE), mask
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image '{path}': {exc}") from exc


def resize_image(image: Image.Image, size: Size) -> Image.Image:
    """Resize to ``size`` (width, height); unchanged when it already has that size."""
    if image.size == tuple(size):
        return image
    shrinking = size[0] * size[1] < image.size[0] * image.size[1]
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.LANCZOS
    return image.resize(cast(Size, tuple(size)), resample=resample)


def crop_window(resized: Size, bucket: Size, rng: Optional[random.Random]) -> CropWindow:
    """Centred window, or a uniformly random one when ``rng`` is given (random crop)."""
    spare_w = resized[0] - bucket[0]
    spare_h = resized[1] - bucket[1]
    if spare_w < 0 or spare_h < 0:
        raise ValueError(f"resized size {resized} does not cover bucket {bucket}")
    if rng is None:
        return CropWindow(spare_w // 2, spare_h // 2)
    return CropWindow(rng.randint(0, spare_w), rng.randint(0, spare_h))


def crop_top_left(window: CropWindow, resized: Size, bucket: Size, flip: bool) -> tuple[int, int]:
    """SDXL crop conditioning (top, left) of the window, measured in the image as trained."""
    left = resized[0] - window.left - bucket[0] if flip else window.left
    return window.top, left


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """(3, H, W) float32 in [-1, 1] from an 8-bit RGB image."""
    array = np.array(image, dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def prepare_image(
    path: Path,
    choice: BucketChoice,
    flip: bool,
    crop_rng: Optional[random.Random] = None,
    with_mask: bool = False,
) -> PreparedImage:
    """Load ``path`` and produce the bucket-sized training tensor (random crop when ``crop_rng``);
    with ``with_mask`` also its latent-size loss mask, cut by the very same window and flip."""
    image, mask = load_rgb_and_mask(path, with_mask)
    original = image.size
    window = crop_window(choice.resized, choice.bucket, crop_rng)
    mask_tensor = None
    if with_mask:
        pixel_mask = mask_to_tensor(fit_to_bucket(mask, choice, window, flip)) if mask is not None \
            else torch.ones(1, choice.bucket[1], choice.bucket[0])
        mask_tensor = latent_mask(pixel_mask)
    return PreparedImage(
        pixels=pil_to_tensor(fit_to_bucket(image, choice, window, flip)),
        original_size_hw=(original[1], original[0]),
        crop_top_left=crop_top_left(window, choice.resized, choice.bucket, flip),
        target_size_hw=(choice.bucket[1], choice.bucket[0]),
        mask=mask_tensor,
    )


def fit_to_bucket(image: Image.Image, choice: BucketChoice, window: CropWindow, flip: bool) -> Image.Image:
    """Resize to the choice's cover size, cut the bucket-sized ``window`` and mirror when ``flip``."""
    resized = resize_image(image, choice.resized)
    box = (window.left, window.top, window.left + choice.bucket[0], window.top + choice.bucket[1])
    cropped = resized.crop(box)
    return cropped.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else cropped
