"""Registry entries for the training data: folders, captions, augmentation, buckets, caching (group "dataset")."""

from __future__ import annotations

from typing import Any

from .params_spec import Form, Param


def _resolution_text(value: Any, warnings: list[str]) -> Any:
    """sd-scripts also takes the resolution as [width, height] or as one number."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return ",".join(str(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


DATASET_PARAMS = (
    Param("train_data_dir", str, None, group="dataset", managed=True, stand_in="dataset", path=True,
          help="Folder whose subfolders are named <repeats>_<class tokens> and hold the images."),
    Param("reg_data_dir", str, None, group="dataset", path=True,
          help="Regularisation images, laid out like train_data_dir."),
    Param("dataset_config", str, None, group="dataset", path=True,
          help="sd-scripts dataset TOML ([general], [[datasets]], [[datasets.subsets]]); when set, "
               "train_data_dir and reg_data_dir are ignored."),
    Param("resolution", str, None, group="dataset", ui="text", form=Form("dataset", 10, "Training resolution"),
          results_rank=110,
          normalise=_resolution_text,
          help="Training size: \"512\" or \"width,height\". Unset: 512 for SD1/SD2, 1024 for SDXL."),
    Param("caption_extension", str, ".caption", group="dataset", tab_default=".txt",  # preprocessing writes .txt
          help="Extension of the caption file next to each image (most datasets use .txt)."),
    Param("shuffle_caption", bool, False, group="dataset", ui="checkbox",
          form=Form("captions", 10, "Shuffle caption tags"),
          kohya_key="ss_shuffle_caption",
          help="Shuffle the comma-separated tags of each caption every step."),
    Param("keep_tokens", int, 0, group="dataset", ui="number", min=0, form=Form("captions", 20, "Tags kept in front"),
          kohya_key="ss_keep_tokens",
          help="Keep this many leading tags in place when shuffling or dropping tags."),
    Param("keep_tokens_separator", str, "", group="dataset",
          help="Text before this marker (e.g. |||) stays fixed when shuffling, instead of keep_tokens."),
    Param("caption_prefix", str, None, group="dataset",
          help="Text put before every caption."),
    Param("caption_suffix", str, None, group="dataset",
          help="Text put after every caption."),
    Param("caption_dropout_rate", float, 0.0, group="dataset", ui="slider", min=0.0, max=1.0,
          form=Form("captions", 40, "Caption dropout"), kohya_key="ss_caption_dropout_rate",
          help="Probability of training a sample with an empty caption."),
    Param("caption_tag_dropout_rate", float, 0.0, group="dataset", ui="slider", min=0.0, max=1.0,
          form=Form("captions", 50, "Tag dropout"), kohya_key="ss_caption_tag_dropout_rate",
          help="Probability of dropping each (non-kept) tag of a caption."),
    Param("caption_dropout_every_n_epochs", int, 0, group="dataset", min=0,
          kohya_key="ss_caption_dropout_every_n_epochs",
          help="Drop all captions in every n-th epoch (0: never)."),
    Param("flip_aug", bool, False, group="dataset", ui="checkbox", form=Form("captions", 30, "Random horizontal flips"),
          kohya_key="ss_flip_aug",
          help="Flip images horizontally at random (not for asymmetric subjects)."),
    Param("random_crop", bool, False, group="dataset", kohya_key="ss_random_crop",
          help="Crop the overhang at a random place instead of the centre (not with cache_latents)."),
    Param("alpha_mask", bool, False, group="dataset",
          help="Use each image's alpha channel as its loss mask (transparent: ignored) and turn masked_loss "
               "on, as sd-scripts' alpha_mask does. A <name>.mask.png beside an image without alpha applies "
               "too; images with neither train everywhere."),
    Param("enable_bucket", bool, False, group="dataset", ui="checkbox",
          form=Form("dataset", 20, "Aspect-ratio buckets"),
          kohya_key="ss_enable_bucket",
          help="Aspect-ratio buckets: train each image at the bucket size closest to its shape."),
    Param("min_bucket_reso", int, 256, group="dataset", ui="number", min=64, max=4096,
          form=Form("dataset", 30, "Smallest bucket side"), kohya_key="ss_min_bucket_reso",
          help="Smallest bucket side in pixels."),
    Param("max_bucket_reso", int, 1024, group="dataset", ui="number", min=64, max=8192,
          form=Form("dataset", 40, "Largest bucket side"), kohya_key="ss_max_bucket_reso",
          help="Largest bucket side in pixels (raise it, e.g. to 2048, for SDXL)."),
    Param("bucket_reso_steps", int, 64, group="dataset", min=8, max=512,
          help="Bucket sides are multiples of this (64 for SD1/SD2, 32 or 64 for SDXL)."),
    Param("bucket_no_upscale", bool, False, group="dataset", kohya_key="ss_bucket_no_upscale",
          help="Never enlarge small images; their buckets are made to fit them."),
    Param("cache_latents", bool, False, group="dataset", ui="checkbox", form=Form("memory", 20, "Cache latents"),
          kohya_key="ss_cache_latents",
          help="Encode every image with the VAE once, before training (faster, less memory)."),
    Param("cache_latents_to_disk", bool, False, group="dataset",
          help="Also store the cached latents as .npz files next to the images for later runs."),
    Param("cache_text_encoder_outputs", bool, False, group="dataset",
          help="SDXL: encode captions once (needs network_train_unet_only, no caption shuffling or "
               "dropout)."),
    Param("prior_loss_weight", float, 1.0, group="dataset", min=0.0, kohya_key="ss_prior_loss_weight",
          help="Loss weight of regularisation images."),
    Param("max_data_loader_n_workers", int, 8, group="dataset", min=0, max=64,
          help="Background processes loading images (capped at the CPU count; 0: load in the trainer).",
          note="max_data_loader_n_workers is accepted and ignored: images load in the trainer process."),
    Param("persistent_data_loader_workers", bool, False, group="dataset",
          help="Keep the loader processes between epochs (faster epoch starts, more RAM)."),
)
