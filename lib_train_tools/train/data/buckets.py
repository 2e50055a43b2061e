"""Aspect-ratio buckets: the bucket list, and which bucket (and resize) each image gets.

Matches kohya's bucketing. Upscale mode: a predefined list keeps about ``W*H`` pixels with
both sides multiples of ``step`` between ``min_size`` and ``max_size``; an image whose own size
is on the list keeps it, otherwise it takes the bucket with the nearest aspect ratio and is
scaled to cover it (the overhang is cropped later). No-upscale mode: no list; an image larger
than ``W*H`` pixels is shrunk to that area keeping its aspect ratio, and its bucket is its size
floored to multiples of ``step``. Fixed-size mode (``enabled=False``): every image is scaled to
cover ``W x H`` and cropped to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence, cast

from .errors import DataError

# Training sizes must be whole latent pixels; the VAE downsamples by 8.
LATENT_FACTOR = 8

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class BucketSpec:
    """Bucketing settings; ``resolution`` is (width, height) and defines the pixel area."""

    resolution: Size = (512, 512)
    enabled: bool = True
    min_size: int = 256
    max_size: int = 1024
    step: int = 64
    no_upscale: bool = False

    def __post_init__(self) -> None:
        width, height = self.resolution
        if width <= 0 or height <= 0 or width % LATENT_FACTOR or height % LATENT_FACTOR:
            raise ValueError(f"resolution {width}x{height} must be positive multiples of {LATENT_FACTOR}")
        if self.step <= 0 or self.step % LATENT_FACTOR:
            raise ValueError(f"bucket step {self.step} must be a positive multiple of {LATENT_FACTOR}")
        if self.enabled and not self.no_upscale:
            low, high = self.bucket_min, self.bucket_max
            if min(self.resolution) < low or max(self.resolution) > high:
                raise ValueError(
                    f"resolution {width}x{height} must lie within the bucket sizes {low}..{high} "
                    f"(min_bucket_reso {self.min_size}, max_bucket_reso {self.max_size})"
                )

    @property
    def bucket_min(self) -> int:
        """``min_size`` rounded down to a multiple of ``step`` (never below one step)."""
        return max(self.step, self.min_size - self.min_size % self.step)

    @property
    def bucket_max(self) -> int:
        """``max_size`` rounded up to a multiple of ``step``."""
        return -(-self.max_size // self.step) * self.step


@dataclass(frozen=True)
class BucketChoice:
    """Where one image goes: ``bucket`` is the training size, ``resized`` the size it is scaled to
    before cropping (both (width, height); ``resized`` covers ``bucket``)."""

    bucket: Size
    resized: Size


def make_bucket_list(resolution: Size, min_size: int, max_size: int, step: int) -> list[Size]:
    """Sorted (width, height) buckets of about ``resolution``'s area (kohya's list)."""
    area = resolution[0] * resolution[1]
    side = int(math.sqrt(area) // step) * step
    buckets = {(side, side)}
    for width in range(min_size, max_size + 1, step):
        height = min(max_size, (area // width) // step * step)
        if height >= min_size:
            buckets.add((width, height))
            buckets.add((height, width))
    return sorted(buckets)


def nearest_bucket(size: Size, buckets: Sequence[Size]) -> Size:
    """The image's own size when listed, else the first bucket with the closest aspect ratio."""
    if tuple(size) in buckets:
        return cast(Size, tuple(size))
    ratio = size[0] / size[1]
    return min(buckets, key=lambda b: abs(b[0] / b[1] - ratio))


def cover_size(size: Size, bucket: Size) -> Size:
    """Scale ``size`` (keeping aspect ratio) so that it just covers ``bucket``; rounded to pixels."""
    width, height = size
    if width / height > bucket[0] / bucket[1]:
        scale = bucket[1] / height
    else:
        scale = bucket[0] / width
    resized = (int(width * scale + 0.5), int(height * scale + 0.5))
    return max(resized[0], bucket[0]), max(resized[1], bucket[1])


def _round_to_step(value: float, step: int) -> int:
    rounded = int(value + 0.5)
    return rounded - rounded % step


def shrink_to_area(size: Size, area: int, step: int) -> Size:
    """No-upscale resize: images over ``area`` pixels shrink to it, keeping the aspect ratio.

    One side is rounded to ``step``; whichever choice (width or height) keeps the aspect ratio
    closer wins, and the other side follows from the ratio.
    """
    width, height = size
    if width * height <= area:
        return width, height
    ratio = width / height
    exact_w = math.sqrt(area * ratio)
    exact_h = area / exact_w
    by_w = _round_to_step(exact_w, step)
    by_h = _round_to_step(exact_h, step)
    h_for_w = _round_to_step(by_w / ratio, step)
    w_for_h = _round_to_step(by_h * ratio, step)
    error_w = abs(by_w / h_for_w - ratio) if h_for_w else math.inf
    error_h = abs(w_for_h / by_h - ratio) if by_h else math.inf
    if error_w < error_h:
        return by_w, int(by_w / ratio + 0.5)
    return int(by_h * ratio + 0.5), by_h


@dataclass(frozen=True)
class BucketTable:
    """A :class:`BucketSpec` with its predefined bucket list (empty in no-upscale mode)."""

    spec: BucketSpec
    buckets: tuple[Size, ...] = field(default=())

    @classmethod
    def from_spec(cls, spec: BucketSpec) -> BucketTable:
        if not spec.enabled:
            return cls(spec, (cast(Size, tuple(spec.resolution)),))
        if spec.no_upscale:
            return cls(spec, ())
        listed = make_bucket_list(spec.resolution, spec.bucket_min, spec.bucket_max, spec.step)
        return cls(spec, tuple(listed))

    def assign(self, size: Size) -> BucketChoice:
        """The bucket and resize for an image of ``size``; DataError if it is too small to bucket."""
        if size[0] <= 0 or size[1] <= 0:
            raise DataError(f"image size {size[0]}x{size[1]} is empty")
        if self.spec.enabled and self.spec.no_upscale:
            return self._assign_no_upscale(size)
        bucket = nearest_bucket(size, self.buckets)
        return BucketChoice(bucket, cover_size(size, bucket))

    def _assign_no_upscale(self, size: Size) -> BucketChoice:
        spec = self.spec
        resized = shrink_to_area(size, spec.resolution[0] * spec.resolution[1], spec.step)
        bucket = (resized[0] - resized[0] % spec.step, resized[1] - resized[1] % spec.step)
        if bucket[0] == 0 or bucket[1] == 0:
            raise DataError(
                f"image size {size[0]}x{size[1]} is smaller than one bucket step ({spec.step} px) in no-upscale mode"
            )
        return BucketChoice(bucket, resized)
