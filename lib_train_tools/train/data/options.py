"""The data pipeline's settings in one frozen dataclass, which the trainer fills from its config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .buckets import BucketSpec
from .captions import CaptionOptions
from .folders import DEFAULT_CAPTION_EXTENSIONS


@dataclass(frozen=True)
class DataOptions:
    """Where the images are and how samples are built (kohya option names in comments)."""

    train_dir: Path  # train_data_dir: parent of <repeats>_<name> folders
    reg_dir: Optional[Path] = None  # reg_data_dir
    caption_extensions: tuple[str, ...] = DEFAULT_CAPTION_EXTENSIONS  # caption_extension (first found wins)
    batch_size: int = 1  # train_batch_size
    seed: int = 0  # seed: epoch order and every per-sample random choice derive from it
    buckets: BucketSpec = field(default_factory=BucketSpec)  # resolution, enable_bucket, *_bucket_reso, ...
    captions: CaptionOptions = field(default_factory=CaptionOptions)
    flip_aug: bool = False  # flip_aug: mirror with probability 0.5
    random_crop: bool = False  # random_crop: random instead of centred crop of the overhang
    prior_loss_weight: float = 1.0  # loss weight of regularisation samples
    validation_split: float = 0.0  # validation_split: share of the training images held out (data/held_out.py)
    validation_seed: Optional[int] = None  # validation_seed: seed of the held-out choice (None: ``seed``)
    masked_loss: bool = False  # masked_loss: carry each image's loss mask (data/masks.py) in the batch

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size {self.batch_size} must be at least 1")
        if self.prior_loss_weight < 0:
            raise ValueError(f"prior_loss_weight {self.prior_loss_weight} must not be negative")
        if not 0.0 <= self.validation_split <= 1.0:
            raise ValueError(f"validation_split {self.validation_split} must be between 0 and 1")
        if not self.caption_extensions:
            raise ValueError("caption_extensions must name at least one extension, e.g. ('.txt',)")

    @property
    def held_out_seed(self) -> int:
        """The seed of the held-out choice and of the validation draws: ``validation_seed``, else ``seed``."""
        return self.seed if self.validation_seed is None else self.validation_seed
