"""Repeats and step counts: what one epoch and the whole run cost, for the UI to show live.

steps per epoch = ceil(images x repeats / batch size); total = steps per epoch x epochs.
The guides aim at 250-1000 total steps; the original Train Tools tab used 512 / images repeats,
at least 4. Changing a version's repeats renames its ``processed/<repeats>_<project>`` folder.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..projects.layout import VersionPaths

GUIDE_MIN_STEPS = 250
GUIDE_MAX_STEPS = 1000
ORIGINAL_TAB_TARGET = 512
ORIGINAL_TAB_MIN_REPEATS = 4


@dataclass(frozen=True)
class StepCount:
    steps_per_epoch: int
    total_steps: int
    in_guide_range: bool  # 250 <= total <= 1000


def step_count(images: int, repeats: int, epochs: int, batch_size: int) -> StepCount:
    """Steps per epoch and in total for the given dataset size and settings."""
    checks = (("images", images, 0), ("repeats", repeats, 1), ("epochs", epochs, 1), ("batch size", batch_size, 1))
    for label, value, least in checks:
        if not isinstance(value, int) or value < least:
            raise ValueError(f"{label} must be a whole number of at least {least}, got {value!r}")
    per_epoch = math.ceil(images * repeats / batch_size)
    total = per_epoch * epochs
    return StepCount(per_epoch, total, GUIDE_MIN_STEPS <= total <= GUIDE_MAX_STEPS)


def original_tab_repeats(images: int) -> int:
    """The original tab's rule: 512 / images (rounded down), at least 4."""
    if images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    return max(ORIGINAL_TAB_MIN_REPEATS, ORIGINAL_TAB_TARGET // images)


def repeats_for_target(images: int, epochs: int, batch_size: int, target_steps: int = 500) -> int:
    """Repeats (at least 1) whose total step count comes closest to ``target_steps``."""
    if min(images, epochs, batch_size, target_steps) < 1:
        raise ValueError(
            f"images, epochs, batch size and target steps must be at least 1, "
            f"got {images}, {epochs}, {batch_size}, {target_steps}"
        )
    guess = max(1, round(target_steps * batch_size / (images * epochs)))
    candidates = {max(1, guess - 1), guess, guess + 1}
    return min(
        candidates, key=lambda r: (abs(step_count(images, r, epochs, batch_size).total_steps - target_steps), r)
    )


def set_repeats(version: VersionPaths, repeats: int) -> str:
    """Rename the processed folder to ``<repeats>_<project>``; returns the new folder name."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a whole number of at least 1, got {repeats!r}")
    with version.lock():
        current = version.processed_dir()
        if current is None:
            raise FileNotFoundError(f"version {version.name!r} has no processed dataset yet; preprocess it first")
        target = version.processed_parent / version.processed_folder_name(repeats)
        if current != target:
            os.replace(current, target)
    return target.name
