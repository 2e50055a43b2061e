"""Any Pillow image to 8-bit RGB: the one conversion preprocessing, tagging and the trainer share.

Pillow's own ``convert("RGB")`` clips wide modes instead of scaling them (a 16-bit greyscale PNG
becomes pure white), so these are scaled here first:

* ``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` (16-bit greyscale): value / 257, rounded
  (65535 -> 255, 257 * v -> v).
* ``I`` (32-bit integer; older Pillow loads 16-bit PNGs this way): values within 0..65535 are
  16-bit and divided by 257; anything else (negative, or beyond 16 bits) is stretched linearly from
  the image's own minimum..maximum to 0..255.
* ``F`` (32-bit float): values within 0..1 are fractions of white (x 255); within 0..255 they are
  taken as they are; otherwise stretched from minimum..maximum. NaN counts as 0, infinities as the finite extremes.
  A constant image outside 0..255 is clipped.

16-bit RGB(A) PNGs are already reduced to 8 bits by Pillow when opened. Transparency (``RGBA``,
``LA``, ``La``, ``PA``, ``RGBa``, and ``P``/``L``/``RGB`` with a transparent colour) is composited
onto ``background``, as preprocessing always did. ``LAB`` goes through a colour-managed transform
when Pillow has LittleCMS; every other mode (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``HSV``,
``RGBX``) uses Pillow's conversion, which is exact for them.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from PIL import Image

WHITE = (255, 255, 255)
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
SIXTEEN_BIT_MAX = 65535


def to_rgb(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """``image`` as 8-bit RGB: wide modes scaled, transparency composited onto ``background``.

    Raises ``ValueError`` naming the mode when Pillow cannot convert it at all.
    """
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_wide_to_8bit(image), "L").convert("RGB")
    if mode == "La":
        image = image.convert("LA")
    try:
        if image.mode in ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("RGBA")
            base = Image.new("RGBA", rgba.size, tuple(background) + (255,))
            return Image.alpha_composite(base, rgba).convert("RGB")
        if mode == "LAB":
            return _lab_to_rgb(image)
        return image.convert("RGB")
    except ValueError as exc:
        raise ValueError(f"images in Pillow's colour mode {mode!r} cannot be converted to RGB ({exc})") from exc


def _wide_to_8bit(image: Image.Image) -> np.ndarray:
    """One greyscale channel of a 16-bit, 32-bit integer or float image as uint8 (rules above)."""
    if image.mode.startswith("I;16"):
        values = np.asarray(image).astype(np.float64)
        return np.round(values / 257.0).astype(np.uint8)
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    values = np.where(np.isnan(values), 0.0, np.clip(values, low, high))
    if image.mode == "I" and low >= 0 and high <= SIXTEEN_BIT_MAX:
        scaled = values / 257.0
    elif image.mode == "F" and low >= 0 and high <= 1.0:
        scaled = values * 255.0
    elif low >= 0 and high <= 255:
        scaled = values
    elif high > low:
        scaled = (values - low) * 255.0 / (high - low)
    else:
        scaled = values
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)  # halves round up


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow built without LittleCMS
        return image.convert("RGB")
    try:
        lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
        transform = ImageCms.buildTransformFromOpenProfiles(lab, srgb, "LAB", "RGB")
        return cast(Image.Image, ImageCms.applyTransform(image, transform))  # None only with inPlace=True
    except (OSError, ImageCms.PyCMSError):
        return image.convert("RGB")
