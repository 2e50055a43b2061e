"""The training dataset: ties folders, buckets, captions, images, caches and the epoch plan.

``TrainingDataset`` knows every image, its bucket and its effective repeats. For an epoch it
plans the batches (:meth:`epoch_batches`) and turns each planned batch into a
:class:`TrainingBatch` (:meth:`load_batch`): latents from a filled :class:`LatentCache` or pixel
tensors, the captions as processed for that epoch, per-sample loss weights
(``prior_loss_weight`` for regularisation images), SDXL size conditioning, and text-encoder
outputs when a :class:`TextEncoderCache` is given, and with ``masked_loss`` each sample's latent-size
loss mask (``masks.py``: alpha channel, else ``<stem>.mask.png``, else ones). Every random choice (caption shuffle and
dropout, flip, random crop) is seeded from (seed, epoch, item, repeat): no global RNG.

With ``validation_split`` some training images are held out (``held_out.py``): they are not among
``items``, so no epoch plan holds them; ``held_out`` is a dataset of just those images, loaded
without the random parts, one image per batch (:meth:`load_item`), for the validation loss.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from collections import abc
from typing import Optional, Sequence

import torch

from .batches import PlannedBatch, SampleRef, balance_reg_repeats, batches_per_epoch, plan_epoch, shard_batches
from .buckets import BucketChoice, BucketTable, Size
from .caption_checks import CountTokens, count_tokens, dataset_warnings
from .captions import possible_captions, process_caption
from .errors import DataError
from .folders import ImageItem, scan_dataset
from .held_out import split_held_out, steady_options
from .images import crop_top_left, crop_window, prepare_image
from .latent_cache import LatentCache, LatentJob
from .options import DataOptions
from .seeds import derived_rng
from .steps import FolderCount, StepPlan, describe_steps, plan_steps
from .text_cache import TextEncoderCache


@dataclass(frozen=True)
class TrainingBatch:
    """One step's inputs. Exactly one of ``latents`` (B, C, h, w) / ``pixels`` (B, 3, H, W) is set.

    ``time_ids`` (B, 6) holds SDXL's original (h, w), crop (top, left), target (h, w) per sample;
    ``masks`` (B, 1, h, w) in [0, 1] the latent-size loss masks when ``masked_loss`` is on, else None.
    """

    captions: tuple[str, ...]
    loss_weights: torch.Tensor
    time_ids: torch.Tensor
    latents: Optional[torch.Tensor]
    pixels: Optional[torch.Tensor]
    text_outputs: Optional[dict[str, torch.Tensor]]
    paths: tuple[Path, ...]
    flipped: tuple[bool, ...]
    masks: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class _SampleData:
    tensor: torch.Tensor
    time_ids: tuple[int, ...]
    mask: Optional[torch.Tensor] = None


def assign_buckets(items: Sequence[ImageItem], table: BucketTable) -> list[BucketChoice]:
    """Bucket choice of every item; DataError naming the image when it cannot be bucketed."""
    choices = []
    for item in items:
        try:
            choices.append(table.assign(item.size))
        except DataError as exc:
            raise DataError(f"image '{item.path}': {exc}") from exc
    return choices


def effective_repeats(items: Sequence[ImageItem]) -> list[int]:
    """Folder repeats for training images, kohya-balanced repeats for regularisation images."""
    train_samples = sum(item.repeats for item in items if not item.is_reg)
    reg_indices = [index for index, item in enumerate(items) if item.is_reg]
    balanced = balance_reg_repeats(train_samples, [items[index].repeats for index in reg_indices])
    repeats = [0 if item.is_reg else item.repeats for item in items]
    for index, count in zip(reg_indices, balanced):
        repeats[index] = count
    return repeats


class TrainingDataset:
    """Items plus options; plans epochs and loads batches (holds no random state of its own)."""

    def __init__(self, items: Sequence[ImageItem], options: DataOptions) -> None:
        if not any(not item.is_reg for item in items):
            raise DataError(f"the dataset in '{options.train_dir}' has no training images")
        split = split_held_out(items, options.validation_split, options.held_out_seed)
        items = split.train
        self.items: tuple[ImageItem, ...] = tuple(items)
        self.options = options
        self.validation_note: Optional[str] = split.note  # why nothing was held out, when asked to
        self.held_out: Optional[TrainingDataset] = \
            TrainingDataset(split.held_out, steady_options(options)) if split.held_out else None
        self.choices: tuple[BucketChoice, ...] = tuple(assign_buckets(items, BucketTable.from_spec(options.buckets)))
        self.repeats: tuple[int, ...] = tuple(effective_repeats(items))

    @classmethod
    def from_folders(cls, options: DataOptions) -> TrainingDataset:
        """Scan ``options.train_dir`` (and ``reg_dir``) and build the dataset."""
        return cls(scan_dataset(options.train_dir, options.reg_dir, options.caption_extensions), options)

    # Sizes and step arithmetic

    def bucket_sample_counts(self) -> dict[Size, int]:
        """Samples per epoch in each bucket (what kohya records as ``ss_bucket_info``)."""
        counts: dict[Size, int] = {}
        for choice, count in zip(self.choices, self.repeats):
            if count:
                counts[choice.bucket] = counts.get(choice.bucket, 0) + count
        return dict(sorted(counts.items()))

    def batches_per_epoch(self) -> int:
        return batches_per_epoch([c.bucket for c in self.choices], self.repeats, self.options.batch_size)

    def folder_counts(self) -> list[FolderCount]:
        """Images, folder repeats and effective samples per folder, training folders first."""
        counts: dict[tuple[bool, str], list[int]] = {}
        for item, samples in zip(self.items, self.repeats):
            entry = counts.setdefault((item.is_reg, item.folder), [0, item.repeats, 0])
            entry[0] += 1
            entry[2] += samples
        return [
            FolderCount(name, images, repeats, is_reg, samples)
            for (is_reg, name), (images, repeats, samples) in counts.items()
        ]

    def plan_steps(
        self,
        world_size: int = 1,
        grad_accum: int = 1,
        max_train_epochs: Optional[int] = None,
        max_train_steps: Optional[int] = None,
    ) -> StepPlan:
        return plan_steps(self.batches_per_epoch(), world_size, grad_accum, max_train_epochs, max_train_steps)

    def describe_steps(self, plan: StepPlan) -> str:
        """The step arithmetic line printed before training starts."""
        buckets = len(self.bucket_sample_counts())
        text = describe_steps(self.folder_counts(), self.options.batch_size, plan, buckets)
        if self.held_out is not None:
            text += f"; {len(self.held_out.items)} image(s) held out for the validation loss (not trained on)"
        return text

    def caption_warnings(self, token_windows: int = 1, count: CountTokens = count_tokens) -> list[str]:
        """Warnings to show once before training: empty caption files (trained with the folder's class
        tokens) and captions longer than ``75 * token_windows`` tokens (cut off), each as one message."""
        return dataset_warnings(self.items, self.repeats, self.options.captions, token_windows, count)

    # Epoch plan and per-sample choices

    def epoch_batches(self, epoch: int, rank: int = 0, world_size: int = 1) -> list[PlannedBatch]:
        """Batches of ``epoch`` (from 0) for process ``rank``; a pure function of (seed, epoch)."""
        buckets = [choice.bucket for choice in self.choices]
        planned = plan_epoch(buckets, self.repeats, self.options.batch_size, self.options.seed, epoch)
        return shard_batches(planned, rank, world_size)

    def sample_caption(self, sample: SampleRef, epoch: int) -> str:
        rng = derived_rng(self.options.seed, "caption", epoch, sample.item, sample.repeat)
        return process_caption(self.items[sample.item].caption, self.options.captions, rng, epoch)

    def sample_flip(self, sample: SampleRef, epoch: int) -> bool:
        if not self.options.flip_aug:
            return False
        return derived_rng(self.options.seed, "flip", epoch, sample.item, sample.repeat).random() < 0.5

    def sample_crop_rng(self, sample: SampleRef, epoch: int) -> Optional[random.Random]:
        if not self.options.random_crop:
            return None
        return derived_rng(self.options.seed, "crop", epoch, sample.item, sample.repeat)

    def loss_weight(self, sample: SampleRef) -> float:
        return self.options.prior_loss_weight if self.items[sample.item].is_reg else 1.0

    # Caches

    def latent_jobs(self) -> list[LatentJob]:
        """What to encode for a latent cache: every image in use, in its bucket, with flip copies."""
        if self.options.random_crop:
            raise ValueError("latents cannot be cached with random_crop (the crop changes every step)")
        jobs = [
            LatentJob(item.path, choice, self.options.flip_aug, self.options.masked_loss)
            for item, choice, count in zip(self.items, self.choices, self.repeats)
            if count
        ]
        return jobs + (self.held_out.latent_jobs() if self.held_out is not None else [])

    def text_cache_captions(self) -> list[str]:
        """Every caption text the run can produce (ValueError when captions are shuffled or tag-dropped)."""
        texts: dict[str, None] = {}
        for item, count in zip(self.items, self.repeats):
            if count:
                texts.update(dict.fromkeys(possible_captions(item.caption, self.options.captions)))
        if self.held_out is not None:
            texts.update(dict.fromkeys(self.held_out.text_cache_captions()))
        return list(texts)

    # Loading

    def load_batch(
        self,
        batch: PlannedBatch,
        epoch: int,
        latents: Optional[LatentCache] = None,
        text: Optional[TextEncoderCache] = None,
    ) -> TrainingBatch:
        """Materialise one planned batch (latents from ``latents`` when given, else pixels)."""
        flips = tuple(self.sample_flip(sample, epoch) for sample in batch.samples)
        captions = tuple(self.sample_caption(sample, epoch) for sample in batch.samples)
        loaded = [
            self._load_sample(sample, epoch, flip, latents) for sample, flip in zip(batch.samples, flips)
        ]
        stacked = torch.stack([data.tensor for data in loaded])
        return TrainingBatch(
            captions=captions,
            loss_weights=torch.tensor([self.loss_weight(sample) for sample in batch.samples], dtype=torch.float32),
            time_ids=torch.tensor([data.time_ids for data in loaded], dtype=torch.long),
            latents=stacked if latents is not None else None,
            pixels=None if latents is not None else stacked,
            text_outputs=text.get_batch(captions) if text is not None else None,
            paths=tuple(self.items[sample.item].path for sample in batch.samples),
            flipped=flips,
            masks=torch.stack([d.mask for d in loaded if d.mask is not None]) if self.options.masked_loss else None,
        )

    def load_item(
        self, item: int, latents: Optional[LatentCache] = None, text: Optional[TextEncoderCache] = None
    ) -> TrainingBatch:
        """Image ``item`` alone, as a batch of one (its first copy, as epoch 0 would load it)."""
        return self.load_batch(PlannedBatch(self.choices[item].bucket, (SampleRef(item, 0),)), 0, latents, text)

    def item_key(self, item: int) -> str:
        """A name of image ``item`` that stays the same between runs: ``<folder>/<file name>``."""
        return f"{self.items[item].folder}/{self.items[item].path.name}"

    def _load_sample(self, sample: SampleRef, epoch: int, flip: bool, cache: Optional[LatentCache]) -> _SampleData:
        item = self.items[sample.item]
        choice = self.choices[sample.item]
        target = (choice.bucket[1], choice.bucket[0])
        if cache is None:
            image = prepare_image(item.path, choice, flip, self.sample_crop_rng(sample, epoch),
                                  with_mask=self.options.masked_loss)
            ids = image.original_size_hw + image.crop_top_left + image.target_size_hw
            return _SampleData(image.pixels, ids, image.mask)
        job = LatentJob(item.path, choice, self.options.flip_aug, self.options.masked_loss)
        tensor = cache.get(job, flip)
        mask = cache.get_mask(job, flip) if self.options.masked_loss else None
        crop = crop_top_left(crop_window(choice.resized, choice.bucket, None), choice.resized, choice.bucket, flip)
        return _SampleData(tensor, (item.size[1], item.size[0]) + crop + target, mask)


class EpochLoader(abc.Sequence):
    """Map-style view of one epoch for one process: ``loader[i]`` is its i-th :class:`TrainingBatch`.

    ``start`` skips the batches a resumed run already trained; usable directly or wrapped in a
    ``torch.utils.data.DataLoader(loader, batch_size=None)``.
    """

    def __init__(
        self,
        dataset: TrainingDataset,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        latents: Optional[LatentCache] = None,
        text: Optional[TextEncoderCache] = None,
    ) -> None:
        self._dataset = dataset
        self._epoch = epoch
        self._batches = dataset.epoch_batches(epoch, rank, world_size)[start:]
        self._latents = latents
        self._text = text

    def __len__(self) -> int:
        return len(self._batches)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("EpochLoader does not support slicing; pass start= instead")
        return self._dataset.load_batch(self._batches[index], self._epoch, self._latents, self._text)
