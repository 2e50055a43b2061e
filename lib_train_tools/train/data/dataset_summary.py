"""Dataset facts that kohya records in LoRA metadata, as JSON-ready Python values.

The metadata writer turns these into ``ss_num_train_images``, ``ss_num_reg_images``,
``ss_dataset_dirs``, ``ss_reg_dataset_dirs``, ``ss_tag_frequency`` and ``ss_bucket_info``
(it owns the ``str``/JSON encoding). Definitions follow kohya: train images count with their
repeats; tag frequency splits the raw captions (before prefix, shuffle or dropout) on ",",
strips and lower-cases them, counted per folder; bucket counts include repeats; the aspect-ratio
error is averaged over the images in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .dataset import TrainingDataset


@dataclass(frozen=True)
class DatasetSummary:
    """Values for the ``ss_*`` dataset keys (dicts are JSON-serialisable)."""

    num_train_images: int
    num_reg_images: int
    dataset_dirs: dict[str, dict[str, int]]
    reg_dataset_dirs: dict[str, dict[str, int]]
    tag_frequency: dict[str, dict[str, int]]
    bucket_info: dict[str, Any]


def folder_dirs(dataset: TrainingDataset, is_reg: bool) -> dict[str, dict[str, int]]:
    """``{"10_sks dog": {"n_repeats": 10, "img_count": 40}}`` for train or reg folders."""
    dirs: dict[str, dict[str, int]] = {}
    for count in dataset.folder_counts():
        if count.is_reg == is_reg:
            dirs[count.name] = {"n_repeats": count.repeats, "img_count": count.images}
    return dirs


def tag_frequency(dataset: TrainingDataset) -> dict[str, dict[str, int]]:
    """Per folder, how many raw captions contain each tag (lower-cased)."""
    frequency: dict[str, dict[str, int]] = {}
    for item in dataset.items:
        counts = frequency.setdefault(item.folder, {})
        for tag in item.caption.split(","):
            tag = tag.strip().lower()
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return frequency


def bucket_info(dataset: TrainingDataset) -> dict[str, Any]:
    """Non-empty buckets with their sample counts, and the mean |bucket AR - image AR|."""
    buckets = {
        str(index): {"resolution": [width, height], "count": count}
        for index, ((width, height), count) in enumerate(dataset.bucket_sample_counts().items())
    }
    errors = [
        abs(choice.bucket[0] / choice.bucket[1] - item.size[0] / item.size[1])
        for item, choice, repeats in zip(dataset.items, dataset.choices, dataset.repeats)
        if repeats
    ]
    return {"buckets": buckets, "mean_img_ar_error": sum(errors) / len(errors)}


def summarise_dataset(dataset: TrainingDataset) -> DatasetSummary:
    """All metadata facts of ``dataset``."""
    return DatasetSummary(
        num_train_images=sum(r for item, r in zip(dataset.items, dataset.repeats) if not item.is_reg),
        num_reg_images=sum(1 for item in dataset.items if item.is_reg),
        dataset_dirs=folder_dirs(dataset, is_reg=False),
        reg_dataset_dirs=folder_dirs(dataset, is_reg=True),
        tag_frequency=tag_frequency(dataset),
        bucket_info=bucket_info(dataset),
    )
