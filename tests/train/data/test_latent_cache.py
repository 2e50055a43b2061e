"""Tests for lib_train_tools/train/data/latent_cache.py: reuse, invalidation, disk files, sharding."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from lib_train_tools.train.data.buckets import BucketChoice
from lib_train_tools.train.data.images import prepare_image
from lib_train_tools.train.data.latent_cache import LatentCache, LatentJob, cache_path_for

from .helpers import write_image

CHOICE = BucketChoice(bucket=(32, 16), resized=(40, 16))


class FakeVae:
    """Average-pools by 8 like a VAE downsamples; counts the images it has encoded."""

    def __init__(self) -> None:
        self.encoded = 0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.encoded += pixels.shape[0]
        return F.avg_pool2d(pixels, 8) * 2.0


def expected_latents(job: LatentJob, flip: bool = False) -> torch.Tensor:
    pixels = prepare_image(job.path, job.choice, flip=flip).pixels
    return F.avg_pool2d(pixels[None], 8)[0] * 2.0


@pytest.fixture()
def job(tmp_path):
    return LatentJob(write_image(tmp_path / "1_x" / "a.png", (40, 16)), CHOICE, with_flip=True)


def test_memory_cache_encodes_once_with_flipped_copy(job):
    vae = FakeVae()
    cache = LatentCache(vae, "fake-vae", batch_size=4)
    assert cache.fill([job, job]) == 1
    assert vae.encoded == 2  # the crop and its mirror
    assert torch.allclose(cache.get(job, flip=False), expected_latents(job))
    assert torch.allclose(cache.get(job, flip=True), expected_latents(job, flip=True))
    assert cache.fill([job]) == 0 and vae.encoded == 2
    assert not cache_path_for(job.path).exists()


def test_get_without_fill_is_an_error(job):
    with pytest.raises(RuntimeError, match="not cached"):
        LatentCache(FakeVae(), "v").get(job, flip=False)


def test_flip_copy_missing_is_an_error(job):
    plain = LatentJob(job.path, job.choice, with_flip=False)
    cache = LatentCache(FakeVae(), "v")
    cache.fill([plain])
    with pytest.raises(RuntimeError, match="without a flipped copy"):
        cache.get(plain, flip=True)


def test_disk_cache_is_written_atomically_and_reused(job):
    first = LatentCache(FakeVae(), "vae-a", to_disk=True)
    first.fill([job])
    cache_file = cache_path_for(job.path)
    assert cache_file.name == "a.png.tt_latents.safetensors" and cache_file.is_file()
    assert sorted(p.name for p in job.path.parent.iterdir()) == ["a.png", cache_file.name]
    vae = FakeVae()
    second = LatentCache(vae, "vae-a", to_disk=True)
    assert second.fill([job]) == 0 and vae.encoded == 0
    assert torch.allclose(second.get(job, flip=True), expected_latents(job, flip=True))


def refill_count(job: LatentJob, vae_id: str = "vae-a") -> int:
    return LatentCache(FakeVae(), vae_id, to_disk=True).fill([job])


def test_disk_cache_invalidated_by_vae_bucket_and_flip(job):
    assert refill_count(job) == 1
    assert refill_count(job, "vae-b") == 1
    assert refill_count(job, "vae-b") == 0
    other_bucket = LatentJob(job.path, BucketChoice((40, 16), (40, 16)), True)
    assert refill_count(other_bucket, "vae-b") == 1
    no_flip = LatentJob(job.path, CHOICE, False)
    assert refill_count(no_flip, "vae-b") == 1
    assert refill_count(no_flip, "vae-b") == 0


def test_disk_cache_invalidated_when_image_changes(job):
    assert refill_count(job) == 1
    stat = job.path.stat()
    os.utime(job.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert refill_count(job) == 1  # touched: mtime differs
    write_image(job.path, (40, 16), (1, 2, 3))
    assert refill_count(job) == 1  # new content and size
    assert refill_count(job) == 0


def test_disk_cache_detects_same_size_same_mtime_content_change(job):
    assert refill_count(job) == 1
    data = bytearray(job.path.read_bytes())
    stat = job.path.stat()
    data[-5] ^= 0xFF  # inside the IEND CRC: same size, different bytes
    job.path.write_bytes(bytes(data))
    os.utime(job.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert job.path.stat().st_size == stat.st_size
    assert refill_count(job) == 1


def test_damaged_cache_file_is_re_encoded(job):
    refill_count(job)
    cache_path_for(job.path).write_bytes(b"garbage")
    cache = LatentCache(FakeVae(), "vae-a", to_disk=True)
    assert cache.fill([job]) == 1
    assert torch.allclose(cache.get(job, flip=False), expected_latents(job))


def test_sharded_disk_fill_covers_every_image(tmp_path):
    jobs = [LatentJob(write_image(tmp_path / f"i{n}.png", (40, 16)), CHOICE, False) for n in range(5)]
    encoded = [LatentCache(FakeVae(), "v", to_disk=True).fill(jobs, rank=r, world_size=2) for r in range(2)]
    assert encoded == [3, 2]
    reader_vae = FakeVae()
    reader = LatentCache(reader_vae, "v", to_disk=True)
    for one in jobs:
        assert torch.allclose(reader.get(one, flip=False), expected_latents(one))
    assert reader_vae.encoded == 0


def test_encoder_returning_wrong_count_is_an_error(job):
    cache = LatentCache(lambda pixels: pixels[:1], "v")
    with pytest.raises(RuntimeError, match="returned 1 latents for 2 images"):
        cache.fill([job])
