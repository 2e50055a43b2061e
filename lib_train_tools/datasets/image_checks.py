"""Checking that uploaded bytes are an image we can train on, with the reason when not.

Every image is fully decoded once, because a truncated JPEG opens fine and only fails when its
pixels are read. The pixel count is checked from the header before decoding, so a
decompression bomb (a small file declaring a huge image) is refused without allocating it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError


@dataclass(frozen=True)
class ImageLimits:
    """What an upload accepts: the short side at least ``min_side``, at most ``max_pixels``."""

    min_side: int = 64
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
