"""Tiny image and folder builders shared by the data-pipeline tests."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from lib_train_tools.train.data.buckets import BucketSpec

# A 64x64-area bucket table small enough for 16-128 px test images.
SMALL_BUCKETS = BucketSpec(resolution=(64, 64), min_size=32, max_size=128, step=16)


def column_ramp(width: int, height: int) -> Image.Image:
    """RGB image whose red channel is 4 * column and green channel is 4 * row (exact pixel probes)."""
    cols = np.arange(width, dtype=np.uint16)[None, :].repeat(height, 0)
    rows = np.arange(height, dtype=np.uint16)[:, None].repeat(width, 1)
    array = np.stack([(cols * 4) % 256, (rows * 4) % 256, np.full_like(cols, 200)], axis=-1)
    return Image.fromarray(array.astype(np.uint8), "RGB")


def write_image(path: Path, size: tuple[int, int], color: Optional[tuple[int, int, int]] = None) -> Path:
    """Write a PNG (or by extension) of ``size`` (w, h): a solid colour, or a column ramp."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color) if color is not None else column_ramp(*size)
    image.save(path)
    return path


def write_caption(image_path: Path, text: str, ext: str = ".txt") -> Path:
    caption = image_path.with_suffix(ext)
    caption.write_text(text, encoding="utf-8")
    return caption


def make_folder(root: Path, name: str, count: int, size: tuple[int, int] = (16, 16)) -> list[Path]:
    """``count`` solid-colour PNGs named img00.png... in ``root/name``."""
    return [write_image(root / name / f"img{i:02d}.png", size, (10 * i % 256, 50, 90)) for i in range(count)]
