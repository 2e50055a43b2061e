"""Tests for lib_train_tools/train/data/dataset.py: the assembled pipeline from folders to batches."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lib_train_tools.train.data.buckets import BucketSpec
from lib_train_tools.train.data.captions import CaptionOptions
from lib_train_tools.train.data.dataset import EpochLoader, TrainingDataset
from lib_train_tools.train.data.errors import DataError
from lib_train_tools.train.data.latent_cache import LatentCache, LatentJob
from lib_train_tools.train.data.options import DataOptions
from lib_train_tools.train.data.text_cache import TextEncoderCache

from .helpers import make_folder, write_image


def pooled_vae(pixels: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(pixels, 8)


def test_items_repeats_buckets_and_batch_count(options):
    dataset = TrainingDataset.from_folders(options)
    assert [i.path.name for i in dataset.items] == ["a.png", "b.png", "c.png", "img00.png", "img01.png"]
    assert dataset.repeats == (5, 5, 5, 8, 7)  # reg balanced to the 15 training samples
    assert dataset.bucket_sample_counts() == {(48, 80): 5, (64, 64): 20, (80, 48): 5}
    assert dataset.batches_per_epoch() == 3 + 3 + 10
    assert len(dataset.epoch_batches(0)) == 16


def test_pixel_batches_carry_weights_conditioning_and_captions(options):
    dataset = TrainingDataset.from_folders(options)
    flips = set()
    for planned in dataset.epoch_batches(0):
        batch = dataset.load_batch(planned, epoch=0)
        width, height = planned.bucket
        assert batch.latents is None and batch.pixels.shape == (len(planned.samples), 3, height, width)
        for row, sample in enumerate(planned.samples):
            item = dataset.items[sample.item]
            assert batch.loss_weights[row].item() == (0.5 if item.is_reg else 1.0)
            assert batch.time_ids[row].tolist() == [item.size[1], item.size[0], 0, 0, height, width]
            expected_tags = sorted(item.caption.split(", "))
            assert sorted(batch.captions[row].split(", ")) == expected_tags
            assert batch.captions[row].split(", ")[0] == item.caption.split(", ")[0]
        flips.update(batch.flipped)
    assert flips == {True, False}


def test_rebuilt_dataset_reproduces_epoch_exactly(options):
    first, second = TrainingDataset.from_folders(options), TrainingDataset.from_folders(options)
    assert first.epoch_batches(4) == second.epoch_batches(4)
    assert first.epoch_batches(4) != first.epoch_batches(5)
    for planned in first.epoch_batches(4)[:4]:
        a, b = first.load_batch(planned, 4), second.load_batch(planned, 4)
        assert a.captions == b.captions and a.flipped == b.flipped
        assert torch.equal(a.pixels, b.pixels)


def test_caption_changes_between_epochs_but_not_within_a_replay(options):
    dataset = TrainingDataset.from_folders(options)
    sample = next(s for b in dataset.epoch_batches(0) for s in b.samples if s.item == 0)
    per_epoch = [dataset.sample_caption(sample, e) for e in range(8)]
    assert len(set(per_epoch)) > 1
    assert per_epoch == [dataset.sample_caption(sample, e) for e in range(8)]


def test_latent_batches_use_cache_and_flipped_copies(options):
    dataset = TrainingDataset.from_folders(options)
    cache = LatentCache(pooled_vae, "pool8")
    assert cache.fill(dataset.latent_jobs()) == 5
    for planned in dataset.epoch_batches(0):
        batch = dataset.load_batch(planned, 0, latents=cache)
        width, height = planned.bucket
        assert batch.pixels is None and batch.latents.shape == (len(planned.samples), 3, height // 8, width // 8)
        for row, sample in enumerate(planned.samples):
            job = LatentJob(dataset.items[sample.item].path, dataset.choices[sample.item], True)
            assert torch.equal(batch.latents[row], cache.get(job, batch.flipped[row]))


def test_latent_time_ids_report_centre_crop(tmp_path):
    write_image(tmp_path / "t" / "1_x" / "wide.png", (100, 64))  # covers the 64x64 bucket as 100x64
    options = DataOptions(train_dir=tmp_path / "t", buckets=BucketSpec(resolution=(64, 64), enabled=False, min_size=8))
    dataset = TrainingDataset.from_folders(options)
    cache = LatentCache(pooled_vae, "pool8")
    cache.fill(dataset.latent_jobs())
    batch = dataset.load_batch(dataset.epoch_batches(0)[0], 0, latents=cache)
    assert batch.time_ids.tolist() == [[64, 100, 0, 18, 64, 64]]


def test_random_crop_cannot_cache_latents(options):
    dataset = TrainingDataset.from_folders(replace(options, random_crop=True))
    with pytest.raises(ValueError, match="random_crop"):
        dataset.latent_jobs()


def test_text_cache_captions_and_outputs(options):
    dataset = TrainingDataset.from_folders(replace(options, captions=CaptionOptions(prefix="p", dropout_rate=0.1)))
    assert dataset.text_cache_captions() == ["p sks, red hair, smile, outdoors", "", "p sks", "p person"]
    text = TextEncoderCache(lambda caps: {"pooled": torch.tensor([float(len(c)) for c in caps])})
    text.fill(dataset.text_cache_captions())
    batch = dataset.load_batch(dataset.epoch_batches(0)[0], 0, text=text)
    assert batch.text_outputs["pooled"].tolist() == [float(len(c)) for c in batch.captions]
    with pytest.raises(ValueError, match="vary per step"):
        TrainingDataset.from_folders(options).text_cache_captions()


def test_dropout_every_n_epochs_applies_per_epoch(options):
    dataset = TrainingDataset.from_folders(replace(options, captions=CaptionOptions(dropout_every_n_epochs=2)))
    planned = dataset.epoch_batches(1)[0]
    assert dataset.load_batch(planned, 1).captions == ("",) * len(planned.samples)
    planned = dataset.epoch_batches(2)[0]
    assert all(dataset.load_batch(planned, 2).captions)


def test_epoch_loader_shards_and_resumes(options):
    dataset = TrainingDataset.from_folders(options)
    full = EpochLoader(dataset, epoch=2)
    assert len(full) == 16
    assert [len(EpochLoader(dataset, 2, rank=r, world_size=3)) for r in range(3)] == [6, 6, 6]
    resumed = EpochLoader(dataset, epoch=2, start=3)
    assert len(resumed) == 13
    assert resumed[0].captions == full[3].captions and torch.equal(resumed[0].pixels, full[3].pixels)
    rank1 = EpochLoader(dataset, 2, rank=1, world_size=2)
    assert rank1[0].paths == full[1].paths


def test_step_summary_from_folders(tmp_path):
    make_folder(tmp_path / "a", "5_char", 20, size=(16, 16))
    make_folder(tmp_path / "b", "10_char", 10, size=(16, 16))
    fixed = BucketSpec(resolution=(16, 16), enabled=False, min_size=16)
    first = TrainingDataset.from_folders(DataOptions(train_dir=tmp_path / "a", batch_size=4, buckets=fixed))
    text = first.describe_steps(first.plan_steps(max_train_epochs=10))
    assert text == "20 images x 5 repeats = 100 samples / batch 4 = 25 steps per epoch x 10 epochs = 250 steps"
    second = TrainingDataset.from_folders(DataOptions(train_dir=tmp_path / "b", batch_size=2, buckets=fixed))
    assert second.plan_steps(max_train_epochs=10).total_steps == 500


def test_reg_samples_counted_in_summary(options):
    dataset = TrainingDataset.from_folders(options)
    text = dataset.describe_steps(dataset.plan_steps(max_train_epochs=2))
    assert text == (
        "3 images x 5 repeats = 15 samples + 15 reg samples (2 reg images) = 30 samples / batch 2 in 3 buckets "
        "= 16 steps per epoch x 2 epochs = 32 steps"
    )


def test_truncated_image_is_named_at_scan_or_load(options):
    path = options.train_dir / "5_sks" / "c.png"
    noise = torch.randint(0, 256, (64, 64, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    Image.fromarray(noise.numpy(), "RGB").save(path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DataError, match="cannot read image") as info:
        dataset = TrainingDataset.from_folders(options)
        for planned in dataset.epoch_batches(0):
            dataset.load_batch(planned, 0)
    assert str(path) in str(info.value)


def test_unbucketable_image_is_named(tmp_path):
    tiny = write_image(tmp_path / "t" / "1_x" / "tiny.png", (8, 40))
    spec = BucketSpec(resolution=(64, 64), step=16, no_upscale=True)
    with pytest.raises(DataError, match="smaller than one bucket step") as info:
        TrainingDataset.from_folders(DataOptions(train_dir=tmp_path / "t", buckets=spec))
    assert str(tiny) in str(info.value)


def test_only_reg_images_is_an_error(options):
    items = [i for i in TrainingDataset.from_folders(options).items if i.is_reg]
    with pytest.raises(DataError, match="has no training images"):
        TrainingDataset(items, options)


def test_options_validation(tmp_path):
    with pytest.raises(ValueError, match="batch_size 0"):
        DataOptions(train_dir=tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="prior_loss_weight"):
        DataOptions(train_dir=tmp_path, prior_loss_weight=-1.0)
