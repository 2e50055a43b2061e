"""Cache of VAE latents, in memory and optionally on disk next to each image.

A cached entry belongs to one image *as prepared for training*: its bucket, its resize, the
centred crop (random crop cannot be cached) and whether a mirrored copy is kept for flip
augmentation. The disk file ``<image name>.tt_latents.safetensors`` stores the latents plus a
validity key in its metadata: image file size, modification time and SHA-256 of its bytes,
bucket, resize, flip flag, the caller's VAE identity string and a format version. A file is
reused only when every field matches; otherwise it is re-encoded and rewritten atomically.

With ``masked_loss`` a job also keeps the latent-size loss mask (``masks.py``) of each copy, and
the key gains a ``mask`` field naming its source (``masks.mask_source_key``: the mask file's size
and hash, or ``none``; an alpha mask is covered by the image's own fingerprint), so adding,
editing or deleting a mask file re-encodes the entry. Jobs without a mask keep the old key.

Encoding is done by a callable supplied by the trainer (``encode(pixels) -> latents``, pixels
(B, 3, H, W) in [-1, 1]), so this module knows nothing about the VAE; whatever the callable
returns (scaled or not) is what is cached, so the VAE identity should say which.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ...atomic import atomic_path
from .buckets import BucketChoice
from .images import prepare_image
from .masks import mask_source_key

CACHE_SUFFIX = ".tt_latents.safetensors"
CACHE_FORMAT = "train_tools.latents.v2"  # v2: 16-bit/float/transparent images scaled and flattened
HASH_CHUNK = 1 << 20

EncodeLatents = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LatentJob:
    """One image to cache: where it is and how it is prepared."""

    path: Path
    choice: BucketChoice
    with_flip: bool
    with_mask: bool = False


@dataclass(frozen=True)
class CachedLatents:
    """Latents (C, h, w) of the centred crop, and of its mirror image when flip is enabled; with a
    mask job, the (1, h, w) loss masks of the same two copies."""

    latents: torch.Tensor
    flipped: Optional[torch.Tensor]
    mask: Optional[torch.Tensor] = None
    mask_flipped: Optional[torch.Tensor] = None


def cache_path_for(image_path: Path) -> Path:
    """The disk cache file that belongs to ``image_path`` (same folder, full name kept)."""
    return image_path.with_name(image_path.name + CACHE_SUFFIX)


def image_fingerprint(path: Path) -> str:
    """``size:mtime_ns:sha256`` of the image file; changes whenever the file does."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return f"{stat.st_size}:{stat.st_mtime_ns}:{digest.hexdigest()}"


def validity_key(job: LatentJob, vae_id: str) -> dict[str, str]:
    """Everything the cached latents depend on, as safetensors metadata strings."""
    key = {
        "format": CACHE_FORMAT,
        "image": image_fingerprint(job.path),
        "bucket": "{}x{}".format(*job.choice.bucket),
        "resized": "{}x{}".format(*job.choice.resized),
        "flip": "1" if job.with_flip else "0",
        "vae": vae_id,
    }
    if job.with_mask:
        key["mask"] = mask_source_key(job.path)
    return key


def read_valid_cache(job: LatentJob, vae_id: str) -> Optional[CachedLatents]:
    """The disk entry when it exists and its key matches; None when missing, stale or unreadable."""
    cache_path = cache_path_for(job.path)
    if not cache_path.is_file():
        return None
    try:
        with safe_open(str(cache_path), framework="pt") as handle:
            if (handle.metadata() or {}) != validity_key(job, vae_id):
                return None
            latents = handle.get_tensor("latents")
            flipped = handle.get_tensor("latents_flipped") if job.with_flip else None
            mask = handle.get_tensor("mask") if job.with_mask else None
            mask_flipped = handle.get_tensor("mask_flipped") if job.with_mask and job.with_flip else None
    except Exception:  # noqa: BLE001 - a damaged cache file is simply re-encoded
        return None
    return CachedLatents(latents, flipped, mask, mask_flipped)


def write_cache(job: LatentJob, vae_id: str, entry: CachedLatents) -> Path:
    """Write the disk entry through a temporary file and an atomic rename."""
    cache_path = cache_path_for(job.path)
    tensors = {"latents": entry.latents.contiguous()}
    if entry.flipped is not None:
        tensors["latents_flipped"] = entry.flipped.contiguous()
    if entry.mask is not None:
        tensors["mask"] = entry.mask.contiguous()
    if entry.mask_flipped is not None:
        tensors["mask_flipped"] = entry.mask_flipped.contiguous()
    with atomic_path(cache_path) as temp_path:
        save_file(tensors, str(temp_path), metadata=validity_key(job, vae_id))
    return cache_path


def _bucket_batches(jobs: Sequence[LatentJob], batch_size: int) -> Iterator[list[LatentJob]]:
    """Jobs grouped by bucket (so pixels stack) and chunked to ``batch_size``."""
    by_bucket: dict[tuple[int, int], list[LatentJob]] = {}
    for job in jobs:
        by_bucket.setdefault(job.choice.bucket, []).append(job)
    for bucket in sorted(by_bucket):
        group = by_bucket[bucket]
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


class LatentCache:
    """Latents for every training image, filled once before training and read per batch."""

    def __init__(self, encode: EncodeLatents, vae_id: str, to_disk: bool = False, batch_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"VAE batch size {batch_size} must be at least 1")
        self._encode: Optional[EncodeLatents] = encode
        self._vae_id = vae_id
        self._to_disk = to_disk
        self._batch_size = batch_size
        self._memory: dict[LatentJob, CachedLatents] = {}

    def fill(
        self, jobs: Sequence[LatentJob], rank: int = 0, world_size: int = 1, progress: Optional[Progress] = None
    ) -> int:
        """Make every job available; returns how many images were encoded.

        With ``to_disk`` and several processes, process ``rank`` handles jobs ``rank::world_size``
        and the others read them from disk later (the trainer puts a barrier in between).
        Without disk caching each process encodes everything it will read.
        """
        unique = list(dict.fromkeys(jobs))
        owned = unique[rank::world_size] if self._to_disk else unique
        missing = [job for job in owned if not self._restore(job)]
        done = len(owned) - len(missing)
        if progress is not None:
            progress(done, len(owned))
        for group in _bucket_batches(missing, self._batch_size):
            self._encode_group(group)
            done += len(group)
            if progress is not None:
                progress(done, len(owned))
        return len(missing)

    def forget_encoder(self) -> None:
        """Drop the encode callable (and the VAE it holds) once ``fill`` is done; ``fill`` then refuses."""
        self._encode = None

    def get(self, job: LatentJob, flip: bool) -> torch.Tensor:
        """Latents for one sample (the mirrored copy when ``flip``)."""
        entry = self._entry(job)
        if not flip:
            return entry.latents
        if entry.flipped is None:
            raise RuntimeError(f"latents of '{job.path}' were cached without a flipped copy (flip_aug was off)")
        return entry.flipped

    def get_mask(self, job: LatentJob, flip: bool) -> torch.Tensor:
        """The (1, h, w) loss mask of one sample (of the mirrored copy when ``flip``); needs a mask job."""
        entry = self._entry(job)
        mask = entry.mask_flipped if flip else entry.mask
        if mask is None:
            raise RuntimeError(f"no loss mask of '{job.path}' was cached (masked_loss was off, or flip_aug)")
        return mask

    def _entry(self, job: LatentJob) -> CachedLatents:
        if job not in self._memory and not (self._to_disk and self._restore(job)):
            raise RuntimeError(f"latents of '{job.path}' are not cached (or the image changed); run fill() first")
        return self._memory[job]

    def _restore(self, job: LatentJob) -> bool:
        if job in self._memory:
            return True
        if not self._to_disk:
            return False
        entry = read_valid_cache(job, self._vae_id)
        if entry is not None:
            self._memory[job] = entry
        return entry is not None

    def _encode_group(self, group: list[LatentJob]) -> None:
        if self._encode is None:
            raise RuntimeError("the latent cache's encoder was released; it cannot encode more images")
        prepared = [prepare_image(job.path, job.choice, flip=False, with_mask=job.with_mask) for job in group]
        pixels = torch.stack([image.pixels for image in prepared])
        with_flip = any(job.with_flip for job in group)
        batch = torch.cat([pixels, pixels.flip(-1)]) if with_flip else pixels
        with torch.no_grad():
            latents = self._encode(batch).detach().float().cpu()
        if latents.shape[0] != batch.shape[0]:
            raise RuntimeError(f"encode returned {latents.shape[0]} latents for {batch.shape[0]} images")
        count = len(group)
        for index, job in enumerate(group):
            flipped = latents[count + index].clone() if job.with_flip else None
            mask = prepared[index].mask
            mask_flipped = mask.flip(-1) if mask is not None and job.with_flip else None
            entry = CachedLatents(latents[index].clone(), flipped, mask, mask_flipped)
            self._memory[job] = entry
            if self._to_disk:
                write_cache(job, self._vae_id, entry)
