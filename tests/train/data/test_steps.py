"""Tests for lib_train_tools/train/data/steps.py: step arithmetic and the printed summary."""

from __future__ import annotations

import pytest

from lib_train_tools.train.data.steps import FolderCount, describe_steps, plan_steps


def folder(images, repeats, is_reg=False, samples=None):
    return FolderCount(f"{repeats}_x", images, repeats, is_reg, images * repeats if samples is None else samples)


def test_guide_example_10_images_10_repeats_10_epochs_batch_2():
    plan = plan_steps(50, max_train_epochs=10)
    assert (plan.steps_per_epoch, plan.epochs, plan.total_steps) == (50, 10, 500)
    text = describe_steps([folder(10, 10)], 2, plan)
    assert text == "10 images x 10 repeats = 100 samples / batch 2 = 50 steps per epoch x 10 epochs = 500 steps"


def test_guide_example_20_images_5_repeats_batch_4():
    plan = plan_steps(25, max_train_epochs=10)
    assert plan.total_steps == 250
    assert describe_steps([folder(20, 5)], 4, plan).endswith("= 25 steps per epoch x 10 epochs = 250 steps")


def test_processes_and_gradient_accumulation():
    plan = plan_steps(51, world_size=2, grad_accum=2, max_train_epochs=4)
    assert (plan.batches_per_process, plan.steps_per_epoch, plan.total_steps) == (26, 13, 52)
    text = describe_steps([folder(17, 6)], 2, plan)
    assert "= 51 batches / 2 processes / accumulate 2 = 13 steps per epoch x 4 epochs = 52 steps" in text


def test_max_train_steps_sets_epochs_and_stops_early():
    plan = plan_steps(50, max_train_steps=120)
    assert (plan.epochs, plan.total_steps) == (3, 120)
    text = describe_steps([folder(10, 10)], 2, plan)
    assert text.endswith("x 3 epochs = 150 steps, stopping at 120 (max_train_steps)")
    assert plan_steps(50, max_train_epochs=2, max_train_steps=999).total_steps == 100


def test_mixed_repeats_buckets_and_reg_are_described():
    folders = [folder(10, 10), FolderCount("10_y", 5, 10, False, 50), folder(4, 2), folder(30, 1, True, 158)]
    plan = plan_steps(160, max_train_epochs=1)
    text = describe_steps(folders, 2, plan, bucket_count=3)
    assert text.startswith(
        "15 images x 10 repeats + 4 images x 2 repeats = 158 samples + 158 reg samples (30 reg images) "
        "= 316 samples / batch 2 in 3 buckets = 160 steps per epoch"
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "max_train_epochs or max_train_steps"),
        ({"max_train_epochs": 0}, "max_train_epochs 0"),
        ({"max_train_steps": -3}, "max_train_steps -3"),
        ({"grad_accum": 0, "max_train_epochs": 1}, "gradient accumulation 0"),
    ],
)
def test_invalid_step_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_steps(10, **kwargs)
