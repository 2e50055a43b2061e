"""Registry entries for the base model and the training data (groups "model" and "dataset").

Names follow sd-scripts' argument names so that its TOML files load unchanged. Where our default
differs from sd-scripts', the help text says so.
"""

from __future__ import annotations

from .params_spec import Param

MODEL_PARAMS = (
    Param("pretrained_model_name_or_path", str, None, group="model", ui="text",
          help="Base model: a .safetensors/.ckpt checkpoint file or a Diffusers folder. Required."),
    Param("v2", bool, None, group="model",
          help="The base model is Stable Diffusion 2.x. Unset: detected from the checkpoint."),
    Param("v_parameterization", bool, None, group="model",
          help="The base model predicts v instead of noise (SD2-768-v, v-pred SDXL finetunes). "
               "Unset: detected from the checkpoint."),
    Param("clip_skip", int, None, group="model", ui="slider", min=1, max=12,
          help="Condition on the k-th last text-encoder layer (2 = penultimate). Unset: the last "
               "layer. Ignored for SDXL."),
    Param("max_token_length", int, None, group="model", ui="dropdown", choices=(75, 150, 225),
          help="Caption length in tokens; 150 or 225 encode the caption in 2 or 3 windows of 75. "
               "Unset: 75."),
    Param("mixed_precision", str, "no", group="model", ui="dropdown", choices=("no", "fp16", "bf16"),
          help="Run the frozen base model in this precision; the LoRA weights stay float32."),
    Param("full_fp16", bool, False, group="model",
          help="Keep the LoRA weights and gradients in float16 too (needs mixed_precision fp16).",
          note="full_fp16 is not supported: the LoRA weights stay float32 (fp16 runs use loss scaling)."),
    Param("full_bf16", bool, False, group="model",
          help="Keep the LoRA weights and gradients in bfloat16 too (needs mixed_precision bf16)."),
    Param("gradient_checkpointing", bool, False, group="model", ui="checkbox",
          help="Recompute activations in the backward pass: much less memory, about 30% slower."),
    Param("xformers", bool, False, group="model",
          help="sd-scripts option for the xformers attention kernel.",
          note="xformers is accepted for compatibility and ignored: attention uses torch's SDPA."),
    Param("sdpa", bool, False, group="model",
          help="sd-scripts option for torch's scaled-dot-product attention.",
          note="sdpa is accepted for compatibility and ignored: torch's SDPA is always used."),
    Param("device", str, None, group="model",
          help="Device to train on: cuda, cuda:N, mps or cpu. Unset: the first CUDA GPU, else CPU."),
)

DATASET_PARAMS = (
    Param("train_data_dir", str, None, group="dataset", ui="text",
          help="Folder whose subfolders are named <repeats>_<class tokens> and hold the images."),
    Param("reg_data_dir", str, None, group="dataset", ui="text",
          help="Regularisation images, laid out like train_data_dir."),
    Param("dataset_config", str, None, group="dataset",
          help="sd-scripts dataset TOML ([general], [[datasets]], [[datasets.subsets]]); when set, "
               "train_data_dir and reg_data_dir are ignored."),
    Param("resolution", str, None, group="dataset", ui="text",
          help="Training size: \"512\" or \"width,height\". Unset: 512 for SD1/SD2, 1024 for SDXL."),
    Param("caption_extension", str, ".caption", group="dataset", ui="text",
          help="Extension of the caption file next to each image (most datasets use .txt)."),
    Param("shuffle_caption", bool, False, group="dataset", ui="checkbox",
          help="Shuffle the comma-separated tags of each caption every step."),
    Param("keep_tokens", int, 0, group="dataset", ui="number", min=0,
          help="Keep this many leading tags in place when shuffling or dropping tags."),
    Param("keep_tokens_separator", str, "", group="dataset",
          help="Text before this marker (e.g. |||) stays fixed when shuffling, instead of keep_tokens."),
    Param("caption_prefix", str, None, group="dataset",
          help="Text put before every caption."),
    Param("caption_suffix", str, None, group="dataset",
          help="Text put after every caption."),
    Param("caption_dropout_rate", float, 0.0, group="dataset", ui="slider", min=0.0, max=1.0,
          help="Probability of training a sample with an empty caption."),
    Param("caption_tag_dropout_rate", float, 0.0, group="dataset", ui="slider", min=0.0, max=1.0,
          help="Probability of dropping each (non-kept) tag of a caption."),
    Param("caption_dropout_every_n_epochs", int, 0, group="dataset", min=0,
          help="Drop all captions in every n-th epoch (0: never)."),
    Param("flip_aug", bool, False, group="dataset", ui="checkbox",
          help="Flip images horizontally at random (not for asymmetric subjects)."),
    Param("random_crop", bool, False, group="dataset",
          help="Crop the overhang at a random place instead of the centre (not with cache_latents)."),
    Param("enable_bucket", bool, False, group="dataset", ui="checkbox",
          help="Aspect-ratio buckets: train each image at the bucket size closest to its shape."),
    Param("min_bucket_reso", int, 256, group="dataset", ui="number", min=64, max=4096,
          help="Smallest bucket side in pixels."),
    Param("max_bucket_reso", int, 1024, group="dataset", ui="number", min=64, max=8192,
          help="Largest bucket side in pixels (raise it, e.g. to 2048, for SDXL)."),
    Param("bucket_reso_steps", int, 64, group="dataset", min=8, max=512,
          help="Bucket sides are multiples of this (64 for SD1/SD2, 32 or 64 for SDXL)."),
    Param("bucket_no_upscale", bool, False, group="dataset",
          help="Never enlarge small images; their buckets are made to fit them."),
    Param("cache_latents", bool, False, group="dataset", ui="checkbox",
          help="Encode every image with the VAE once, before training (faster, less memory)."),
    Param("cache_latents_to_disk", bool, False, group="dataset", ui="checkbox",
          help="Also store the cached latents as .npz files next to the images for later runs."),
    Param("cache_text_encoder_outputs", bool, False, group="dataset",
          help="SDXL: encode captions once (needs network_train_unet_only, no caption shuffling or "
               "dropout)."),
    Param("prior_loss_weight", float, 1.0, group="dataset", min=0.0,
          help="Loss weight of regularisation images."),
    Param("max_data_loader_n_workers", int, 8, group="dataset", min=0, max=64,
          help="Background processes loading images (capped at the CPU count; 0: load in the trainer).",
          note="max_data_loader_n_workers is accepted and ignored: images load in the trainer process."),
    Param("persistent_data_loader_workers", bool, False, group="dataset",
          help="Keep the loader processes between epochs (faster epoch starts, more RAM)."),
)
