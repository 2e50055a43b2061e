"""Tests for lib_train_tools/train/data/batches.py: reg balancing, epoch order, rank sharding."""

from __future__ import annotations

from collections import Counter

import pytest

from lib_train_tools.train.data.batches import (
    balance_reg_repeats,
    batches_per_epoch,
    plan_epoch,
    plan_fingerprint,
    shard_batches,
)

BUCKETS = [(64, 64)] * 5 + [(48, 80)] * 3 + [(80, 48)] * 2
REPEATS = [3, 3, 3, 3, 3, 2, 2, 2, 1, 1]  # 15 + 6 + 2 = 23 samples


def all_samples(batches):
    return [sample for batch in batches for sample in batch.samples]


def test_reg_repeats_first_pass_then_round_robin():
    assert balance_reg_repeats(100, [1] * 30) == [4] * 10 + [3] * 20
    assert balance_reg_repeats(100, [50, 50, 50]) == [50, 50, 0]
    assert balance_reg_repeats(100, [60, 60]) == [60, 60]  # first pass may overshoot, as in kohya
    assert balance_reg_repeats(7, [2, 1]) == [4, 3]
    assert balance_reg_repeats(10, []) == []


def test_epoch_contains_every_sample_once_and_batches_share_a_bucket():
    batches = plan_epoch(BUCKETS, REPEATS, 4, seed=1, epoch=0)
    samples = all_samples(batches)
    assert len(samples) == 23 and len(set(samples)) == 23
    assert Counter(s.item for s in samples) == dict(enumerate(REPEATS))
    for batch in batches:
        assert {BUCKETS[s.item] for s in batch.samples} == {batch.bucket}
    sizes = sorted(len(b.samples) for b in batches)
    assert sizes == [2, 2, 3, 4, 4, 4, 4]  # 15 -> 4,4,4,3; 6 -> 4,2; 2 -> 2
    assert len(batches) == batches_per_epoch(BUCKETS, REPEATS, 4) == 7


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    first = plan_epoch(BUCKETS, REPEATS, 2, seed=42, epoch=3)
    assert plan_epoch(BUCKETS, REPEATS, 2, seed=42, epoch=3) == first
    assert plan_epoch(BUCKETS, REPEATS, 2, seed=42, epoch=4) != first
    assert plan_epoch(BUCKETS, REPEATS, 2, seed=43, epoch=3) != first
    assert plan_fingerprint(plan_epoch(BUCKETS, REPEATS, 2, seed=42, epoch=3)) == plan_fingerprint(first)
    assert plan_fingerprint(plan_epoch(BUCKETS, REPEATS, 2, seed=42, epoch=4)) != plan_fingerprint(first)


def test_sharding_covers_all_samples_exactly_once_when_divisible():
    batches = plan_epoch([(64, 64)] * 8, [1] * 8, 2, seed=0, epoch=0)
    shards = [shard_batches(batches, rank, 2) for rank in range(2)]
    assert [len(s) for s in shards] == [2, 2]
    combined = all_samples(shards[0]) + all_samples(shards[1])
    assert sorted(combined) == sorted(all_samples(batches)) and len(set(combined)) == 8
    assert shards[0] == batches[0::2] and shards[1] == batches[1::2]


def test_sharding_pads_by_wrapping_to_equal_counts():
    batches = plan_epoch(BUCKETS, REPEATS, 4, seed=0, epoch=0)  # 7 batches
    shards = [shard_batches(batches, rank, 3) for rank in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    served = Counter(id(b) for shard in shards for b in shard)
    assert all(served[id(b)] >= 1 for b in batches)
    assert [b for b in batches if served[id(b)] == 2] == batches[:2]
    assert shard_batches(batches, 0, 1) == batches


def test_invalid_rank_or_batch_size():
    with pytest.raises(ValueError, match="rank 2 is not valid for world size 2"):
        shard_batches([], 2, 2)
    with pytest.raises(ValueError, match="batch size 0"):
        plan_epoch(BUCKETS, REPEATS, 0, seed=0, epoch=0)
