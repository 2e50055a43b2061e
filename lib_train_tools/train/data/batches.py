"""The epoch plan: which samples form which batch, in which order, on which process.

Each image is expanded by its repeats into samples ``SampleRef(item, repeat)``; samples are
grouped by bucket (a batch never mixes sizes), shuffled inside each bucket, cut into batches of
``batch_size`` (a bucket's last batch may be short) and the batch list is shuffled. All of it is
a pure function of (seed, epoch), so a resumed run rebuilds exactly the same order.

Regularisation images follow kohya: their repeats are rewritten so that reg samples per epoch
match training samples per epoch (see :func:`balance_reg_repeats`).

For several processes the batch list is padded by wrapping around to a multiple of the world
size and process ``r`` takes every ``world_size``-th batch from ``r`` on, so all processes run
the same number of steps (the padding repeats the epoch's first batches).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence, cast

from .buckets import Size
from .seeds import derived_rng


@dataclass(frozen=True, order=True)
class SampleRef:
    """One sample of an epoch: image ``item`` (index into the dataset's items), copy ``repeat``."""

    item: int
    repeat: int


@dataclass(frozen=True)
class PlannedBatch:
    """Samples trained together; all share ``bucket`` (width, height)."""

    bucket: Size
    samples: tuple[SampleRef, ...]


def balance_reg_repeats(train_samples: int, reg_repeats: Sequence[int]) -> list[int]:
    """Effective repeats of regularisation images (kohya's rule).

    First every reg image gets its folder repeats, in order, until the total reaches
    ``train_samples``; if it is still short, one repeat at a time is added round-robin. Images
    beyond the point where the total is reached get 0 (unused this run).
    """
    result = [0] * len(reg_repeats)
    if not reg_repeats or train_samples <= 0:
        return result
    total = 0
    first_pass = True
    while total < train_samples:
        for index, repeats in enumerate(reg_repeats):
            added = repeats if first_pass else 1
            result[index] += added
            total += added
            if total >= train_samples:
                break
        first_pass = False
    return result


def group_samples(buckets: Sequence[Size], repeats: Sequence[int]) -> dict[Size, list[SampleRef]]:
    """Samples of every item, grouped by bucket, in item then repeat order."""
    if len(buckets) != len(repeats):
        raise ValueError(f"{len(buckets)} bucket entries for {len(repeats)} repeat entries")
    groups: dict[Size, list[SampleRef]] = {}
    for item, (bucket, count) in enumerate(zip(buckets, repeats)):
        samples = groups.setdefault(cast(Size, tuple(bucket)), [])
        samples.extend(SampleRef(item, repeat) for repeat in range(count))
    return groups


def batches_per_epoch(buckets: Sequence[Size], repeats: Sequence[int], batch_size: int) -> int:
    """Number of batches in one epoch: sum over buckets of ceil(samples / batch_size)."""
    groups = group_samples(buckets, repeats)
    return sum(-(-len(samples) // batch_size) for samples in groups.values())


def plan_epoch(
    buckets: Sequence[Size], repeats: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[PlannedBatch]:
    """All batches of ``epoch`` (counted from 0) in training order; same inputs, same plan."""
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size} must be at least 1")
    rng = derived_rng(seed, "epoch-order", epoch)
    groups = group_samples(buckets, repeats)
    batches: list[PlannedBatch] = []
    for bucket in sorted(groups):
        samples = groups[bucket]
        rng.shuffle(samples)
        for start in range(0, len(samples), batch_size):
            batches.append(PlannedBatch(bucket, tuple(samples[start : start + batch_size])))
    rng.shuffle(batches)
    return batches


def padded_batch_count(total: int, world_size: int) -> int:
    """Batches per process: ceil(total / world_size)."""
    return -(-total // world_size)


def shard_batches(batches: Sequence[PlannedBatch], rank: int, world_size: int) -> list[PlannedBatch]:
    """The batches process ``rank`` of ``world_size`` trains, equal in count on every process."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not valid for world size {world_size}")
    if not batches:
        return []
    per_rank = padded_batch_count(len(batches), world_size)
    padded = [batches[index % len(batches)] for index in range(per_rank * world_size)]
    return padded[rank::world_size]


def plan_fingerprint(batches: Sequence[PlannedBatch]) -> str:
    """Short hash of an epoch plan; store it with a resume state to detect a changed dataset."""
    digest = hashlib.sha256()
    for batch in batches:
        digest.update("{}x{}:".format(*batch.bucket).encode())
        digest.update(",".join(f"{s.item}.{s.repeat}" for s in batch.samples).encode())
        digest.update(b";")
    return digest.hexdigest()[:16]
