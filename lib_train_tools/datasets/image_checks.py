"""Checking that uploaded bytes are an image we can train on, with the reason when not.

Every image is fully decoded once, because a truncated JPEG opens fine and only fails when its
pixels are read. The pixel count is checked from the header before decoding, so a
decompression bomb (a small file declaring a huge image) is refused without allocating it.

A valid image is never refused for being small: training scales every image to about the
training resolution's area, so a tiny one is kept and flagged (``upscale_note``) with the factor
it will be enlarged by, and the user decides whether to drop it.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

DEFAULT_RESOLUTION = (512, 512)  # the trainer's SD1/SD2 default, used when a version sets none
BLUR_FACTOR = 2.0  # flag images that training enlarges at least this much


@dataclass(frozen=True)
class ImageLimits:
    """What an upload accepts: at most ``max_pixels`` and ``max_file_bytes``.

    ``min_side`` (default 1) is only a floor a caller may raise; small images are flagged instead.
    """

    min_side: int = 1
    max_pixels: int = 40_000_000
    max_file_bytes: int = 200 * 1024 * 1024


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    format: str


class ImageRejected(ValueError):
    """The bytes are not a usable image; ``reason`` says why."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


def check_image_bytes(data: bytes, name: str, limits: ImageLimits = ImageLimits()) -> ImageFacts:
    """Return the image's size and format, or raise ``ImageRejected`` naming ``name`` and the reason."""
    if not data:
        raise ImageRejected(name, "empty file (0 bytes)")
    if len(data) > limits.max_file_bytes:
        raise ImageRejected(name, f"file of {len(data)} bytes is over the {limits.max_file_bytes}-byte limit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageRejected(name, f"decompression bomb: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise ImageRejected(name, "not an image (Pillow cannot identify its format)") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected(name, f"corrupt or truncated image header ({exc})") from exc
        with image:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageRejected(
                    name, f"decompression bomb: {width}x{height} is over the {limits.max_pixels}-pixel limit"
                )
            try:
                image.load()
            except Exception as exc:  # Pillow's decoders raise many types for damaged data
                raise ImageRejected(name, f"corrupt or truncated image data ({exc})") from exc
            fmt = image.format or "unknown"
    if min(width, height) < limits.min_side:
        raise ImageRejected(name, f"too small: {width}x{height}, the short side must be at least {limits.min_side}")
    return ImageFacts(width, height, fmt)


def upscale_factor(width: int, height: int, resolution: tuple[int, int] = DEFAULT_RESOLUTION) -> float:
    """About how much training enlarges a ``width`` x ``height`` image: sqrt(training area / image area)."""
    return math.sqrt(resolution[0] * resolution[1] / max(1, width * height))


def upscale_note(width: int, height: int, resolution: tuple[int, int] = DEFAULT_RESOLUTION) -> str | None:
    """``"8x8: will be upscaled 64x for training at 512x512, expect blur; ..."``, or None when not small."""
    factor = upscale_factor(width, height, resolution)
    if factor < BLUR_FACTOR:
        return None
    shown = f"{factor:.0f}" if factor >= 10 else f"{factor:.1f}".rstrip("0").rstrip(".")
    return (f"{width}x{height}: will be upscaled {shown}x for training at {resolution[0]}x{resolution[1]}, "
            "expect blur; drop it unless you need it")


def training_resolution(value: object) -> tuple[int, int]:
    """A version's ``resolution`` setting ("512" or "width,height") as (width, height); the default otherwise."""
    parts = [part.strip() for part in str(value).split(",")] if isinstance(value, (str, int)) else []
    if len(parts) in (1, 2) and all(part.isdigit() and int(part) > 0 for part in parts):
        return int(parts[0]), int(parts[-1])
    return DEFAULT_RESOLUTION
