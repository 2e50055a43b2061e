"""Loss masks for ``masked_loss``: where a training image's mask comes from and its latent-size form.

Source, first that applies:

1. the image's own alpha channel (``RGBA``, ``LA``, ``La``, ``PA``, ``RGBa``, or a palette / greyscale /
   RGB image with a transparent colour), unless it is fully opaque: an all-255 alpha says nothing,
   so an opaque RGBA export still lets a mask file apply;
2. a greyscale file ``<stem>.mask.png`` beside the image (``cat.png`` -> ``cat.mask.png``), read as
   8-bit luminance: white (255) trains, black (0) is ignored, grey weighs in between;
3. none: the image trains everywhere (weight 1).

sd-scripts takes the mask from the alpha channel (its ``alpha_mask`` option) or from the red channel
of a conditioning image in ``conditioning_data_dir``; the ``.mask.png`` file beside the image is this
project's place for the second kind. The mask is read from the upright (EXIF-rotated) image BEFORE
``color_modes.to_rgb`` composites the transparency away, goes through the same resize, crop and flip
as the image (``images.prepare_image``) and is then area-averaged to the latent grid
(:func:`latent_mask`, one value per 8 x 8 pixel block), where the loss applies it.

``alpha_mask = true`` (sd-scripts' dataset option and ``--alpha_mask`` flag: the alpha channel is
the loss mask) turns this masked loss on (``session._data_options``), with these same sources. That
is what sd-scripts does with a ``train_data_dir``: it applies the masked loss whenever a batch
carries alpha masks, even without ``masked_loss``, and gives an image without alpha a mask of ones;
a ``.mask.png`` file is this project's own (sd-scripts would train it as an image). Where
sd-scripts has both kinds (``conditioning_data_dir`` with ``alpha_mask``) the conditioning image
wins; here the alpha does, and a mask file applies to images without one. ``masked_loss`` alone
reads the alpha here too, where sd-scripts reads only conditioning images. The Dataset tab's
preprocessing writes each image's alpha (or its imported mask) as ``<stem>.mask.png`` beside every
training image made from it, since the training images themselves are flattened to RGB.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, cast

import numpy as np
import torch
from PIL import Image, ImageOps

from ..color_modes import ALPHA_MODES, to_rgb
from ..mask_names import MASK_SUFFIX, is_mask_file, mask_path_for
from .errors import DataError

__all__ = ["MASK_SUFFIX", "alpha_channel", "find_mask", "grey_mask", "is_mask_file", "latent_mask", "mask_path_for",
           "mask_source_key", "mask_to_tensor", "read_mask_file"]

LATENT_FACTOR = 8  # the VAE's spatial downsampling: one latent cell per 8 x 8 pixels
BLACK = (0, 0, 0)


def alpha_channel(image: Image.Image) -> Optional[Image.Image]:
    """The alpha channel as an 8-bit ``L`` image, or None when there is none or it is fully opaque."""
    if image.mode not in ALPHA_MODES and "transparency" not in image.info:
        return None
    source = image.convert("LA") if image.mode == "La" else image
    alpha = source.convert("RGBA").getchannel("A")
    low, _ = cast(tuple[int, int], alpha.getextrema())
    return None if low == 255 else alpha


def read_mask_file(mask_path: Path, size: tuple[int, int]) -> Image.Image:
    """``mask_path`` as an 8-bit ``L`` image (EXIF-rotated; transparent parts count as black).

    DataError when it cannot be read or its size differs from the image's ``size`` (width, height):
    a mask of another size would be stretched onto the wrong pixels."""
    try:
        with Image.open(mask_path) as img:
            img.load()
            grey = grey_mask(cast(Image.Image, ImageOps.exif_transpose(img)))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read mask '{mask_path}': {exc}") from exc
    if grey.size != tuple(size):
        raise DataError(f"mask '{mask_path}' is {grey.size[0]}x{grey.size[1]} but its image is "
                        f"{size[0]}x{size[1]}; a mask must have its image's size")
    return grey


def grey_mask(image: Image.Image) -> Image.Image:
    """Any mode as the 8-bit ``L`` mask it stands for: luminance, transparent parts black (ignored)."""
    return to_rgb(image, BLACK).convert("L")


def find_mask(image_path: Path, upright: Image.Image) -> Optional[Image.Image]:
    """The mask of ``image_path`` (opened and EXIF-rotated as ``upright``) by the rules above, or None."""
    alpha = alpha_channel(upright)
    if alpha is not None:
        return alpha
    mask_path = mask_path_for(image_path)
    return read_mask_file(mask_path, upright.size) if mask_path.is_file() else None


def mask_to_tensor(mask: Image.Image) -> torch.Tensor:
    """(1, H, W) float32 in [0, 1] from an 8-bit ``L`` image (255 -> 1)."""
    array = np.array(mask.convert("L"), dtype=np.uint8)
    return torch.from_numpy(array).float().div_(255.0).unsqueeze(0)


def latent_mask(pixel_mask: torch.Tensor, factor: int = LATENT_FACTOR) -> torch.Tensor:
    """Area average of a (..., H, W) pixel mask over ``factor`` x ``factor`` blocks -> (..., H/f, W/f).

    Bucket sizes are multiples of 8, so every latent cell averages exactly its own 8 x 8 pixels."""
    height, width = pixel_mask.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"mask size {width}x{height} is not a multiple of {factor}")
    lead = pixel_mask.shape[:-2]
    flat = pixel_mask.reshape(-1, 1, height, width).float()
    pooled = torch.nn.functional.avg_pool2d(flat, factor)
    return pooled.reshape(*lead, height // factor, width // factor)


def mask_source_key(image_path: Path) -> str:
    """What a cached mask of ``image_path`` depends on beyond the image file itself: the mask file's
    size and SHA-256, or ``none`` when there is no mask file (the alpha channel is part of
    the image, whose fingerprint the latent cache already keeps). Adding, changing or removing the
    file changes the key, so a stale cache entry is not reused."""
    mask_path = mask_path_for(image_path)
    if not mask_path.is_file():
        return "none"
    data = mask_path.read_bytes()
    return f"file:{len(data)}:{hashlib.sha256(data).hexdigest()}"
