"""Holding training images out for a validation loss (sd-scripts' ``validation_split`` / ``validation_seed``).

The split is a pure function of the image list, the fraction and the seed: the training images
(never regularisation images) are put in a fixed order (folder, then file name), shuffled by a
generator seeded from ``validation_seed``, and taken from the front until ``round(n * fraction)``
images (half rounded up) are held out, skipping any image that would leave its folder with nothing
to train on. Held-out images are not trained on: they leave the dataset's items, so they never
reach an epoch plan. They are loaded like training images but without the random parts (no flip,
a centred crop, the caption without shuffling or dropout), so every measurement sees the same input.

When the images are too few to hold one out, the run trains on all of them, without a
validation loss, and :attr:`HeldOutSplit.note` says why (the trainer reports it as a warning).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

from .captions import CaptionOptions
from .folders import ImageItem
from .options import DataOptions
from .seeds import derived_rng


@dataclass(frozen=True)
class HeldOutSplit:
    """The images to train on (in their original order), those held out, and why none were held out."""

    train: tuple[ImageItem, ...]
    held_out: tuple[ImageItem, ...]
    note: Optional[str] = None


def held_out_count(candidates: int, fraction: float) -> int:
    """``round(candidates * fraction)`` with halves rounded up (0 for a fraction of 0)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"validation_split {fraction} must be between 0 and 1")
    return math.floor(candidates * fraction + 0.5) if fraction > 0 else 0


def split_held_out(items: Sequence[ImageItem], fraction: float, seed: int) -> HeldOutSplit:
    """Split ``items`` into training and held-out images (see the module docstring)."""
    if fraction <= 0:
        return HeldOutSplit(tuple(items), ())
    candidates = sorted((item for item in items if not item.is_reg), key=lambda item: (item.folder, item.path.name))
    wanted = held_out_count(len(candidates), fraction)
    left_in_folder: dict[str, int] = {}
    for item in candidates:
        left_in_folder[item.folder] = left_in_folder.get(item.folder, 0) + 1
    derived_rng(seed, "validation-split").shuffle(candidates)
    chosen: list[ImageItem] = []
    for item in candidates:
        if len(chosen) >= wanted:
            break
        if left_in_folder[item.folder] > 1:
            chosen.append(item)
            left_in_folder[item.folder] -= 1
    if not chosen:
        note = (f"validation_split {fraction:g}: {len(candidates)} training image(s) are too few to hold one out "
                "(each folder keeps at least one image to train on); training on all of them, without a "
                "validation loss")
        return HeldOutSplit(tuple(items), (), note)
    held = set(chosen)
    return HeldOutSplit(tuple(item for item in items if item not in held),
                        tuple(item for item in items if item in held))


def steady_options(options: DataOptions) -> DataOptions:
    """The data options held-out images are loaded with: one at a time, no flip, a centred crop, the
    caption with its prefix, suffix and kept tokens but no shuffling or dropout, and no further split."""
    c = options.captions
    captions = CaptionOptions(prefix=c.prefix, suffix=c.suffix, keep_tokens=c.keep_tokens,
                              keep_tokens_separator=c.keep_tokens_separator, separator=c.separator,
                              secondary_separator=c.secondary_separator)
    return dataclasses.replace(options, batch_size=1, captions=captions, flip_aug=False, random_crop=False,
                               validation_split=0.0)
