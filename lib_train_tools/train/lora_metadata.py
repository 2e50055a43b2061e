"""The str->str metadata dict stored in a LoRA's safetensors header, in kohya's `ss_*` and ModelSpec form.

A1111, Forge, ComfyUI and the civitai-style tools read these keys: the family (`ss_base_model_version`,
`ss_v2`, `modelspec.architecture`), names and dates for the Lora card, and the dataset facts
(`ss_tag_frequency`, `ss_bucket_info`, `ss_dataset_dirs`) as JSON strings. Every value is `str()`-ed
the way sd-scripts does it (None -> "None", bools -> "True"/"False", a resolution -> "(512, 512)").
Options sd-scripts records but this trainer does not have are written with the value that means
"off" in sd-scripts, so readers see a complete, truthful set. The resolved config travels along as
`tt_config` (JSON), so each file carries the settings that made it; paths in it (and in
`ss_sd_model_name`) are cut to base names by default, since LoRA files are shared publicly.

The `sshs_*` hashes are added at save time by `model_hashes.add_sshs_hashes`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import secrets
import time
from typing import Any, Mapping

from .. import __version__
from .config import network_args_dict, to_dict
from .params import KOHYA_KEYS, PATH_OPTIONS
from .train_config import TrainConfig

FAMILIES = ("sd1", "sd2", "sdxl")
DEFAULT_OUTPUT_NAME = "last"
MODELSPEC_VERSION = "1.0.1"
TRAINING_TOOL = f"Train Tools {__version__}"
IMPLEMENTATION_VERSION = f"train-tools/{__version__}"
DEFAULT_TIMESTEP_RANGE = (0, 1000)
SDXL_IMPLEMENTATION = "https://github.com/Stability-AI/generative-models"
SD_IMPLEMENTATION = "diffusers"
SUMMARY_FIELDS = ("num_train_images", "num_reg_images", "dataset_dirs", "reg_dataset_dirs",
                  "tag_frequency", "bucket_info")

# The options sd-scripts records that this trainer does not have: ss key -> (sd-scripts' option name,
# its "off" value, which is written). An option the trainer gains is declared in the registry with
# its `kohya_key` instead, and leaves this table (a test checks that none of these is in the registry).
KOHYA_ONLY_KEYS = {
    "ss_color_aug": ("color_aug", False),
    "ss_num_validation_images": ("num_validation_images", 0),
    "ss_lowram": ("lowram", False),
    "ss_adaptive_noise_scale": ("adaptive_noise_scale", None),
    "ss_face_crop_aug_range": ("face_crop_aug_range", None),
    "ss_scale_weight_norms": ("scale_weight_norms", None),
    "ss_resize_interpolation": ("resize_interpolation", None),
}


class MetadataError(ValueError):
    """An input to the metadata builder cannot be described in LoRA metadata."""


def new_session_id() -> int:
    """A random id in [0, 2**32), shared by every file one training run saves (`ss_session_id`)."""
    return secrets.randbelow(2**32)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise MetadataError(f"model family {family!r} is not one of {', '.join(FAMILIES)}")


def base_model_version(family: str, v_prediction: bool) -> str:
    """`ss_base_model_version`: sd_v1, sd_v2 (with "_v" for v-prediction) or sdxl_base_v1-0."""
    _check_family(family)
    if family == "sdxl":
        return "sdxl_base_v1-0"
    return ("sd_v1" if family == "sd1" else "sd_v2") + ("_v" if v_prediction else "")


def modelspec_architecture(family: str, v_prediction: bool) -> str:
    """`modelspec.architecture` of a LoRA for this family and prediction type."""
    _check_family(family)
    if family == "sdxl":
        return "stable-diffusion-xl-v1-base/lora"
    if family == "sd2":
        return "stable-diffusion-v2-768-v/lora" if v_prediction else "stable-diffusion-v2-512/lora"
    return "stable-diffusion-v1/lora"


def _check_resolution(resolution: Any) -> tuple[int, int]:
    try:
        width, height = (int(side) for side in resolution)
    except (TypeError, ValueError):
        raise MetadataError(f"resolution {resolution!r} is not a (width, height) pair") from None
    if width <= 0 or height <= 0 or (width, height) != tuple(resolution):
        raise MetadataError(f"resolution {resolution!r} must be two positive whole numbers of pixels")
    return width, height


def output_name(cfg: TrainConfig) -> str:
    """The name the LoRA is saved under (sd-scripts' default "last" when unset)."""
    return cfg.output_name or DEFAULT_OUTPUT_NAME


def modelspec_metadata(cfg: TrainConfig, *, family: str, v_prediction: bool, resolution: tuple[int, int],
                       saved_at: float) -> dict[str, str]:
    """The `modelspec.*` keys (Stability ModelSpec) of a LoRA saved at unix time `saved_at`."""
    width, height = _check_resolution(resolution)
    spec = {
        "modelspec.sai_model_spec": MODELSPEC_VERSION,
        "modelspec.architecture": modelspec_architecture(family, v_prediction),
        "modelspec.implementation": SDXL_IMPLEMENTATION if family == "sdxl" else SD_IMPLEMENTATION,
        "modelspec.title": output_name(cfg),
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.date": datetime.datetime.fromtimestamp(saved_at).replace(microsecond=0).isoformat(),
        "modelspec.prediction_type": "v" if v_prediction else "epsilon",
    }
    if cfg.min_timestep is not None or cfg.max_timestep is not None:
        low = DEFAULT_TIMESTEP_RANGE[0] if cfg.min_timestep is None else cfg.min_timestep
        high = DEFAULT_TIMESTEP_RANGE[1] if cfg.max_timestep is None else cfg.max_timestep
        spec["modelspec.timestep_range"] = f"{low},{high}"
    if cfg.clip_skip is not None:
        spec["modelspec.encoder_layer"] = str(cfg.clip_skip)
    spec["modelspec.implementation_version"] = IMPLEMENTATION_VERSION
    return spec


def _network_keys(cfg: TrainConfig, family: str, v_prediction: bool, network_module: str | None) -> dict[str, str]:
    """The keys sd-scripts keeps even with `no_metadata`: what a loader needs to apply the LoRA."""
    keys = {
        "ss_v2": str(family == "sd2"),
        "ss_base_model_version": base_model_version(family, v_prediction),
        # lycoris.kohya files carry their algo, dora_wd, factor, ... in ss_network_args, as LyCORIS writes them.
        "ss_network_module": network_module or cfg.network_module,
        "ss_network_dim": str(cfg.network_dim),
        "ss_network_alpha": str(cfg.network_alpha),
    }
    network_args = network_args_dict(cfg)
    if network_args:
        keys["ss_network_args"] = json.dumps(network_args)
    return keys


def minimal_metadata(cfg: TrainConfig, *, family: str, v_prediction: bool, resolution: tuple[int, int],
                     saved_at: float | None = None,
                     network_module: str | None = None) -> dict[str, str]:
    """The reduced metadata written with sd-scripts' `no_metadata`: network keys and ModelSpec only."""
    when = time.time() if saved_at is None else saved_at
    return {
        **_network_keys(cfg, family, v_prediction, network_module),
        **modelspec_metadata(cfg, family=family, v_prediction=v_prediction, resolution=resolution,
                             saved_at=when),
    }


def _summary_fields(dataset_summary: Any) -> dict[str, Any]:
    """The summary as a dict, whether given as `DatasetSummary` or as a mapping."""
    if dataclasses.is_dataclass(dataset_summary) and not isinstance(dataset_summary, type):
        fields = dataclasses.asdict(dataset_summary)
    elif isinstance(dataset_summary, Mapping):
        fields = dict(dataset_summary)
    else:
        raise MetadataError(f"dataset summary must be a DatasetSummary or a dict, "
                            f"not {type(dataset_summary).__name__}")
    missing = [name for name in SUMMARY_FIELDS if name not in fields]
    if missing:
        raise MetadataError(f"dataset summary lacks {', '.join(missing)}")
    return fields


def _json_value(key: str, value: Any) -> str:
    if not isinstance(value, dict):
        raise MetadataError(f"{key} must be a JSON object (dict), got {type(value).__name__}")
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise MetadataError(f"{key} cannot be written as JSON: {exc}") from None


def _dataset_keys(cfg: TrainConfig, summary: Mapping[str, Any], resolution: tuple[int, int]) -> dict[str, str]:
    """sd-scripts' folder-mode dataset keys; the dict-valued ones as JSON strings."""
    keys = {"ss_total_batch_size": str(cfg.train_batch_size * cfg.gradient_accumulation_steps)}
    keys["ss_resolution"] = str(_check_resolution(resolution))
    keys["ss_num_train_images"] = str(summary["num_train_images"])
    keys["ss_num_reg_images"] = str(summary["num_reg_images"])
    for field in ("dataset_dirs", "reg_dataset_dirs", "tag_frequency", "bucket_info"):
        keys[f"ss_{field}"] = _json_value(f"ss_{field}", summary[field])
    return keys


def sd_model_name(base_model_path: str) -> str:
    """`ss_sd_model_name`: the base name of the model file or folder.

    Only the name: LoRA files get shared, and a full path would publish the trainer's folders.
    """
    if not base_model_path or not str(base_model_path).strip():
        raise MetadataError("base model path is empty; ss_sd_model_name needs the model it was trained on")
    return os.path.basename(os.path.normpath(base_model_path))


def config_json(cfg: TrainConfig, full_paths: bool = False) -> str:
    """`tt_config`: every option as JSON; path options reduced to their base names unless `full_paths`."""
    values = to_dict(cfg)
    if not full_paths:
        for name in PATH_OPTIONS:
            if values[name]:
                values[name] = os.path.basename(os.path.normpath(values[name]))
    return json.dumps(values)


def _base_model_keys(base_model_path: str, hashes: tuple[str, str] | None) -> dict[str, str]:
    keys = {"ss_sd_model_name": sd_model_name(base_model_path)}
    if hashes is not None:
        if len(hashes) != 2:
            raise MetadataError(f"base model hashes must be (legacy hash, sha256), got {hashes!r}")
        keys["ss_sd_model_hash"], keys["ss_new_sd_model_hash"] = hashes
    return keys


def _config_keys(cfg: TrainConfig, *, seed: int | None, max_train_steps: int | None) -> dict[str, str]:
    """Keys read straight off the config (the run's actual seed and step budget winning), and the
    "off" value of each sd-scripts option the trainer does not have."""
    keys = {key: str(off_value) for key, (_option, off_value) in KOHYA_ONLY_KEYS.items()}
    keys.update((key, str(getattr(cfg, option))) for key, option in KOHYA_KEYS.items())  # an option we have wins
    keys["ss_seed"] = str(cfg.seed if seed is None else seed)
    keys["ss_max_train_steps"] = str(cfg.max_train_steps if max_train_steps is None else max_train_steps)
    return keys


def prediction_keys(v_prediction: bool, zero_terminal_snr: bool) -> dict[str, str]:
    """`ss_v_parameterization` and `ss_zero_terminal_snr` as the run resolved them (the config may
    leave both to the checkpoint's markers), so a reader learns how to sample with the LoRA."""
    return {"ss_v_parameterization": str(bool(v_prediction)), "ss_zero_terminal_snr": str(bool(zero_terminal_snr))}


def build_metadata(cfg: TrainConfig, *, family: str, v_prediction: bool, dataset_summary: Any,
                   optimizer_desc: str, session_id: int, training_started_at: float, epoch: int,
                   steps: int, num_epochs: int, num_batches_per_epoch: int, base_model_path: str,
                   base_model_hashes: tuple[str, str] | None, resolution: tuple[int, int],
                   network_module: str | None = None, saved_at: float | None = None,
                   seed: int | None = None, max_train_steps: int | None = None,
                   full_paths: bool = False, zero_terminal_snr: bool = False) -> dict[str, str]:
    """Full metadata of one saved LoRA: the `ss_*` keys, `modelspec.*`, and `tt_config`.

    `epoch`/`steps` describe this checkpoint; `saved_at` (default: now) is `ss_training_finished_at`
    and the ModelSpec date. `seed` and `max_train_steps` give the values the run actually used
    where the config left them to be chosen. `base_model_hashes` is `(legacy, sha256)` from
    `model_hashes.base_model_hashes`, or None to leave the base-model hash keys out. `full_paths`
    keeps whole paths in `tt_config` (default: base names only, as the file may be shared).
    `v_prediction` and `zero_terminal_snr` are the run's resolved values (`prediction_keys`).
    """
    when = time.time() if saved_at is None else saved_at
    summary = _summary_fields(dataset_summary)
    metadata = {
        "ss_session_id": str(session_id),
        "ss_training_started_at": str(training_started_at),
        "ss_training_finished_at": str(when),
        "ss_output_name": output_name(cfg),
        "ss_num_batches_per_epoch": str(num_batches_per_epoch),
        "ss_num_epochs": str(num_epochs),
        "ss_epoch": str(epoch),
        "ss_steps": str(steps),
        "ss_optimizer": optimizer_desc,
        "ss_training_tool": TRAINING_TOOL,
        **_config_keys(cfg, seed=seed, max_train_steps=max_train_steps),
        **_network_keys(cfg, family, v_prediction, network_module),
        **prediction_keys(v_prediction, zero_terminal_snr),
        **_dataset_keys(cfg, summary, resolution),
        **_base_model_keys(base_model_path, base_model_hashes),
        **modelspec_metadata(cfg, family=family, v_prediction=v_prediction, resolution=resolution,
                             saved_at=when),
        "tt_config": config_json(cfg, full_paths),
    }
    return metadata
