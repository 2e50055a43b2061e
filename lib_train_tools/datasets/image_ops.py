"""Pixel operations of preprocessing: load upright on a solid background, resize, crop, split.

Every mode becomes 8-bit RGB through ``train.color_modes.to_rgb``, the conversion the trainer uses too.

All functions take and return Pillow images and never touch files, except ``load_upright`` which
reads one. Resizing uses Lanczos with Pillow's ``reducing_gap`` (a fast box reduction first), and
JPEG files are decoded directly at a reduced scale when the output is much smaller (``draft``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image, ImageOps

from ..train.color_modes import to_rgb

RESAMPLE = Image.Resampling.LANCZOS
REDUCING_GAP = 3.0


def load_upright(path: Path, background: tuple[int, int, int], scale_hint: float = 1.0) -> Image.Image:
    """First frame of ``path``, EXIF orientation applied, transparency flattened onto ``background``.

    ``scale_hint`` < 1 lets a JPEG decode at a reduced size of at least that fraction.
    """
    with Image.open(path) as image:
        if scale_hint < 1.0:
            w, h = image.size
            image.draft("RGB", (max(1, math.ceil(w * scale_hint)), max(1, math.ceil(h * scale_hint))))
        upright = cast(Image.Image, ImageOps.exif_transpose(image))  # None only for in_place=True
        return flatten(upright, background)


def flatten(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """8-bit RGB of any mode (16-bit and float scaled), transparency composited onto ``background``."""
    return to_rgb(image, background)


def fit_area(image: Image.Image, width: int, height: int) -> Image.Image:
    """Shrink (never enlarge) keeping the aspect ratio so the area is at most ``width * height``."""
    w, h = image.size
    scale = math.sqrt(width * height / (w * h))
    if scale >= 1.0:
        return image
    size = (max(1, math.floor(w * scale)), max(1, math.floor(h * scale)))  # floor keeps the area in budget
    return image.resize(size, RESAMPLE, reducing_gap=REDUCING_GAP)


def cover_crop(image: Image.Image, width: int, height: int, anchor: str = "center") -> Image.Image:
    """Scale to cover ``width`` x ``height`` and crop there, centred or on the content's focal point."""
    scaled = cover_scale(image, width, height)
    return scaled.crop(cover_box(scaled, width, height, anchor))


def cover_scale(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled (up or down) to the smallest size that covers ``width`` x ``height``.

    The size depends on the input size only, so a companion of the same size (the image's loss mask)
    scales to exactly the same size; cut both with the image's ``cover_box``."""
    w, h = image.size
    scale = max(width / w, height / h)
    scaled = (max(width, math.ceil(w * scale)), max(height, math.ceil(h * scale)))
    return image if scaled == (w, h) else image.resize(scaled, RESAMPLE, reducing_gap=REDUCING_GAP)


def cover_box(scaled: Image.Image, width: int, height: int, anchor: str = "center") -> tuple[int, int, int, int]:
    """The ``width`` x ``height`` window ``cover_crop`` cuts from the scaled image: centred, or around
    the focal point of ``scaled`` itself (so a mask cut with this box follows its image)."""
    fx, fy = focal_point(scaled) if anchor == "focal" else (0.5, 0.5)
    left = _window_start(fx, scaled.size[0], width)
    top = _window_start(fy, scaled.size[1], height)
    return left, top, left + width, top + height


def focal_point(image: Image.Image) -> tuple[float, float]:
    """Where the detail is, as fractions of width and height: the centroid of edge strength."""
    small = image.convert("L")
    small.thumbnail((96, 96))
    grey = np.asarray(small, dtype=np.float32)
    energy = np.zeros_like(grey)
    energy[:, 1:] += np.abs(np.diff(grey, axis=1))
    energy[1:, :] += np.abs(np.diff(grey, axis=0))
    total = float(energy.sum())
    if total <= 0.0:
        return 0.5, 0.5
    ys, xs = np.indices(energy.shape)
    fx = float((energy * (xs + 0.5)).sum() / total / energy.shape[1])
    fy = float((energy * (ys + 0.5)).sum() / total / energy.shape[0])
    return fx, fy


def split_pieces(image: Image.Image, target_aspect: float, overlap: float) -> list[Image.Image]:
    """Cut a long image into overlapping pieces along its long side.

    A piece has the target's aspect (``width / height``) when that runs the same way as the image,
    else it is square; consecutive pieces share at least ``overlap`` of a piece.
    """
    w, h = image.size
    wide = w >= h
    long_side, short_side = (w, h) if wide else (h, w)
    aspect = target_aspect if wide else 1.0 / target_aspect
    piece = min(long_side, max(short_side, round(short_side * max(aspect, 1.0))))
    if piece >= long_side:
        return [image]
    step = piece * (1.0 - overlap)
    count = max(2, math.ceil((long_side - piece) / step) + 1)
    starts = [round(i * (long_side - piece) / (count - 1)) for i in range(count)]
    if wide:
        return [image.crop((s, 0, s + piece, h)) for s in starts]
    return [image.crop((0, s, w, s + piece)) for s in starts]


def _window_start(focus: float, length: int, window: int) -> int:
    start = round(focus * length - window / 2)
    return min(max(0, start), length - window)
