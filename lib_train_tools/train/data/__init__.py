"""Training-data pipeline: dataset folders, captions, buckets, images, caches and the epoch plan.

Entry points for the trainer: build :class:`DataOptions`, then
``TrainingDataset.from_folders(options)``; print ``dataset.describe_steps(dataset.plan_steps(...))``;
optionally fill a :class:`LatentCache` from ``dataset.latent_jobs()`` and a
:class:`TextEncoderCache` from ``dataset.text_cache_captions()``; then iterate
``EpochLoader(dataset, epoch, rank, world_size, start, latents, text)`` each epoch;
``summarise_dataset(dataset)`` gives the values of kohya's ``ss_*`` dataset metadata keys;
``dataset.caption_warnings(token_windows)`` the caption warnings to show once before training.
Nothing here imports the model stack: encoders are passed in as callables.
"""

from .batches import PlannedBatch, SampleRef, balance_reg_repeats, plan_epoch, plan_fingerprint, shard_batches
from .buckets import BucketChoice, BucketSpec, BucketTable, make_bucket_list
from .captions import CaptionOptions, process_caption
from .dataset import EpochLoader, TrainingBatch, TrainingDataset
from .dataset_summary import DatasetSummary, summarise_dataset
from .errors import DataError
from .folders import ImageItem, parse_folder_name, scan_dataset
from .images import PreparedImage, prepare_image
from .latent_cache import LatentCache, LatentJob, cache_path_for
from .options import DataOptions
from .steps import FolderCount, StepPlan, describe_steps, plan_steps
from .text_cache import TextEncoderCache

__all__ = [
    "BucketChoice",
    "BucketSpec",
    "BucketTable",
    "CaptionOptions",
    "DataError",
    "DataOptions",
    "DatasetSummary",
    "EpochLoader",
    "FolderCount",
    "ImageItem",
    "LatentCache",
    "LatentJob",
    "PlannedBatch",
    "PreparedImage",
    "SampleRef",
    "StepPlan",
    "TextEncoderCache",
    "TrainingBatch",
    "TrainingDataset",
    "balance_reg_repeats",
    "cache_path_for",
    "describe_steps",
    "make_bucket_list",
    "parse_folder_name",
    "plan_epoch",
    "plan_fingerprint",
    "plan_steps",
    "prepare_image",
    "process_caption",
    "scan_dataset",
    "shard_batches",
    "summarise_dataset",
]
