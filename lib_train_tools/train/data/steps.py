"""Step arithmetic: samples, batches, optimizer steps per epoch, epochs and total steps.

Follows kohya: an epoch has one batch per ``batch_size`` samples of each bucket (rounded up per
bucket); with ``world_size`` processes each runs ceil(batches / world_size) of them; with
gradient accumulation one optimizer step takes ``grad_accum`` batches, the last partial group of
an epoch also stepping. ``max_train_epochs`` wins over ``max_train_steps``; with only
``max_train_steps`` the epoch count is what it takes to reach it, and training stops there.
The one-line summary printed before training is built by :func:`describe_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass(frozen=True)
class StepPlan:
    """How long a run is. ``steps_per_epoch`` and ``total_steps`` count optimizer steps."""

    batches_per_epoch: int
    batches_per_process: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    world_size: int = 1
    grad_accum: int = 1


@dataclass(frozen=True)
class FolderCount:
    """Images and repeats of one dataset folder; ``samples`` per epoch after reg balancing."""

    name: str
    images: int
    repeats: int
    is_reg: bool
    samples: int


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def plan_steps(
    batches_per_epoch: int,
    world_size: int = 1,
    grad_accum: int = 1,
    max_train_epochs: Optional[int] = None,
    max_train_steps: Optional[int] = None,
) -> StepPlan:
    """Epochs and optimizer steps of a run; one of ``max_train_epochs`` / ``max_train_steps`` is needed."""
    if batches_per_epoch < 1:
        raise ValueError(f"an epoch needs at least one batch (got {batches_per_epoch})")
    if world_size < 1 or grad_accum < 1:
        raise ValueError(f"world size {world_size} and gradient accumulation {grad_accum} must be at least 1")
    per_process = _ceil_div(batches_per_epoch, world_size)
    steps_per_epoch = _ceil_div(per_process, grad_accum)
    if max_train_epochs is not None:
        if max_train_epochs < 1:
            raise ValueError(f"max_train_epochs {max_train_epochs} must be at least 1")
        epochs, total = max_train_epochs, max_train_epochs * steps_per_epoch
    elif max_train_steps is not None:
        if max_train_steps < 1:
            raise ValueError(f"max_train_steps {max_train_steps} must be at least 1")
        epochs, total = _ceil_div(max_train_steps, steps_per_epoch), max_train_steps
    else:
        raise ValueError("set max_train_epochs or max_train_steps to say how long to train")
    return StepPlan(batches_per_epoch, per_process, steps_per_epoch, epochs, total, world_size, grad_accum)


def _samples_expression(folders: Sequence[FolderCount]) -> str:
    """``10 images x 10 repeats + 4 images x 2 repeats = 108 samples`` (+ the reg part)."""
    images_by_repeats: dict[int, int] = {}
    for folder in folders:
        if not folder.is_reg:
            images_by_repeats[folder.repeats] = images_by_repeats.get(folder.repeats, 0) + folder.images
    terms = " + ".join(f"{images} images x {repeats} repeats" for repeats, images in images_by_repeats.items())
    train = sum(f.samples for f in folders if not f.is_reg)
    reg = sum(f.samples for f in folders if f.is_reg)
    if not reg:
        return f"{terms} = {train} samples"
    reg_images = sum(f.images for f in folders if f.is_reg)
    return f"{terms} = {train} samples + {reg} reg samples ({reg_images} reg images) = {train + reg} samples"


def describe_steps(folders: Sequence[FolderCount], batch_size: int, plan: StepPlan, bucket_count: int = 1) -> str:
    """One line such as
    ``10 images x 10 repeats = 100 samples / batch 2 = 50 steps per epoch x 10 epochs = 500 steps``.
    """
    samples = sum(f.samples for f in folders)
    text = f"{_samples_expression(folders)} / batch {batch_size}"
    if plan.batches_per_epoch != _ceil_div(samples, batch_size):
        text += f" in {bucket_count} buckets"
    if plan.world_size > 1 or plan.grad_accum > 1:
        text += f" = {plan.batches_per_epoch} batches"
        if plan.world_size > 1:
            text += f" / {plan.world_size} processes"
        if plan.grad_accum > 1:
            text += f" / accumulate {plan.grad_accum}"
    full = plan.steps_per_epoch * plan.epochs
    text += f" = {plan.steps_per_epoch} steps per epoch x {plan.epochs} epochs = {full} steps"
    if plan.total_steps != full:
        text += f", stopping at {plan.total_steps} (max_train_steps)"
    return text
