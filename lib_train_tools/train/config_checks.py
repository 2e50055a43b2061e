"""Validation of a training config: every problem found, reported together in one `ConfigError`.

Checks types, ranges and choices against the registry, then the rules that tie options together
(resolution format, conflicting switches, what caching requires). A user fixing a config should see
all of its problems at once, not one per run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from .. import torch_compat
from .params import PARAMS, Param
from .train_config import TrainConfig

RESOLUTION_MULTIPLE = 8
BUCKET_STEP_MULTIPLE = 8


class ConfigError(ValueError):
    """A training config is invalid; `problems` lists each reason, the message shows them all."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" ({source})" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid training configuration{where}, {len(self.problems)} problem(s):\n{lines}")


def parse_resolution(value: str) -> tuple[int, int]:
    """Parse "512" or "width,height" into (width, height); ValueError naming the text otherwise."""
    parts = [part.strip() for part in str(value).split(",")]
    if len(parts) not in (1, 2) or not all(part.isdigit() for part in parts):
        raise ValueError(f"resolution {value!r} is not \"size\" or \"width,height\" in whole pixels")
    width, height = int(parts[0]), int(parts[-1])
    if min(width, height) < 64 or width % RESOLUTION_MULTIPLE or height % RESOLUTION_MULTIPLE:
        raise ValueError(f"resolution {value!r}: each side must be at least 64 and a multiple of "
                         f"{RESOLUTION_MULTIPLE}")
    return width, height


def validate(cfg: TrainConfig, skip: Iterable[str] = ()) -> None:
    """Raise ConfigError listing every problem of `cfg`; `skip` names options already reported."""
    problems = config_problems(cfg, skip)
    if problems:
        raise ConfigError(problems)


def config_problems(cfg: TrainConfig, skip: Iterable[str] = ()) -> list[str]:
    """Every problem of `cfg` as one message each (empty when the config is valid)."""
    bad = set(skip)
    problems = []
    for param in PARAMS:
        if param.name not in bad:
            found = value_problems(param, getattr(cfg, param.name))
            problems.extend(found)
            if found:
                bad.add(param.name)
    # Cross-field rules compare values, so they run on a view where broken values read as defaults:
    # every problem is still listed and a wrong type cannot crash a comparison.
    view = dataclasses.replace(cfg, **{p.name: p.default for p in PARAMS if p.name in bad})
    return problems + _cross_field_problems(view)


def value_problems(param: Param, value: Any) -> list[str]:
    """Type, choice and range problems of one value (the loader has already converted it)."""
    name = param.name
    if value is None:
        return [] if param.optional else [f"{name} must be set (it has no 'unset' value)"]
    type_problem = _type_problem(param, value)
    if type_problem:
        return [type_problem]
    if param.choices and value not in param.choices:
        allowed = ", ".join(str(c) for c in param.choices)
        return [f"{name} is {value!r}, which is not one of: {allowed}"]
    if param.min is not None and value < param.min:
        return [f"{name} is {value}, below the minimum {param.min}"]
    if param.max is not None and value > param.max:
        return [f"{name} is {value}, above the maximum {param.max}"]
    return []


def _type_problem(param: Param, value: Any) -> str | None:
    expected = param.type
    if param.is_list:
        ok = isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)
        return None if ok else f"{param.name} must be a list of strings, got {value!r}"
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    return None if ok else f"{param.name} must be a {expected.__name__}, got {value!r}"


def _cross_field_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    problems += _required_problems(cfg)
    problems += _resolution_problems(cfg)
    problems += _switch_problems(cfg)
    problems += _schedule_problems(cfg)
    problems += _caching_problems(cfg)
    problems += _learning_rate_problems(cfg)
    problems += _kv_list_problems("optimizer_args", cfg.optimizer_args)
    problems += _kv_list_problems("network_args", cfg.network_args)
    return problems


def _learning_rate_problems(cfg: TrainConfig) -> list[str]:
    """A run whose every trained part has learning rate 0 would finish and save an untrained LoRA.

    Adafactor's relative step ignores the learning rate (sd-scripts runs it with lr None), so it is
    the one optimizer that trains at 0. A part trained at 0 next to a part with a rate is allowed:
    text_encoder_lr 0 is the documented way to leave the text encoder alone."""
    args = {item.replace(" ", "").lower() for item in cfg.optimizer_args}
    if cfg.optimizer_type.lower() == "adafactor" and "relative_step=true" in args:
        return []
    rates = []
    if not cfg.network_train_text_encoder_only:
        rates.append(cfg.unet_lr if cfg.unet_lr is not None else cfg.learning_rate)
    if not cfg.network_train_unet_only:
        rates.append(cfg.text_encoder_lr if cfg.text_encoder_lr is not None else cfg.learning_rate)
    if rates and all(rate == 0 for rate in rates):
        return ["the learning rate of every trained part is 0, so nothing would be learned: set learning_rate "
                "(or unet_lr) above 0; 1e-4 is a common start for a LoRA"]
    return []


def _required_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    if not cfg.pretrained_model_name_or_path:
        problems.append("pretrained_model_name_or_path is required: the base model file or folder")
    if not cfg.train_data_dir and not cfg.dataset_config:
        problems.append("train_data_dir (or dataset_config) is required: where the images are")
    if not cfg.output_dir:
        problems.append("output_dir is required: where the LoRA files are written")
    return problems


def _resolution_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    if cfg.min_bucket_reso > cfg.max_bucket_reso:
        problems.append(f"min_bucket_reso {cfg.min_bucket_reso} is larger than max_bucket_reso "
                        f"{cfg.max_bucket_reso}")
    if cfg.bucket_reso_steps % BUCKET_STEP_MULTIPLE:
        problems.append(f"bucket_reso_steps {cfg.bucket_reso_steps} is not a multiple of "
                        f"{BUCKET_STEP_MULTIPLE}")
    if cfg.resolution is None:
        return problems
    try:
        width, height = parse_resolution(cfg.resolution)
    except ValueError as exc:
        return problems + [str(exc)]
    if cfg.enable_bucket and not cfg.bucket_no_upscale:
        if min(width, height) < cfg.min_bucket_reso or max(width, height) > cfg.max_bucket_reso:
            problems.append(f"resolution {cfg.resolution} must lie within min_bucket_reso "
                            f"{cfg.min_bucket_reso} and max_bucket_reso {cfg.max_bucket_reso}")
    return problems


def _switch_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    if cfg.network_train_unet_only and cfg.network_train_text_encoder_only:
        problems.append("network_train_unet_only and network_train_text_encoder_only are both set: "
                        "nothing would be trained")
    if cfg.full_fp16 and cfg.full_bf16:
        problems.append("full_fp16 and full_bf16 are both set; choose one")
    if cfg.full_fp16 and cfg.mixed_precision != "fp16":
        problems.append("full_fp16 needs mixed_precision = \"fp16\"")
    if cfg.full_bf16 and cfg.mixed_precision != "bf16":
        problems.append("full_bf16 needs mixed_precision = \"bf16\"")
    fp8_option = _fp8_option(cfg)
    if fp8_option and cfg.mixed_precision == "no":
        problems.append(f"{fp8_option} needs mixed_precision = \"fp16\" or \"bf16\": the float8 weights are cast "
                        "to it to compute")
    low = 0 if cfg.min_timestep is None else cfg.min_timestep
    high = 1000 if cfg.max_timestep is None else cfg.max_timestep
    if low > high:
        problems.append(f"min_timestep {low} is larger than max_timestep {high}")
    return problems


def _fp8_option(cfg: TrainConfig) -> str | None:
    """The fp8 option a config sets (sd-scripts' fp8_base_unet wins: it keeps the text encoders out)."""
    return "fp8_base_unet" if cfg.fp8_base_unet else "fp8_base" if cfg.fp8_base else None


def device_problems(cfg: TrainConfig, device_type: str) -> list[str]:
    """The precision options `cfg` sets that cannot run on a device of `device_type` with this torch.

    Checked once the device is known (the config alone does not say where a run trains): float8
    base weights need CUDA and torch 2.1+ (`torch_compat.fp8_storage_problem`); full_fp16 needs
    CUDA, because fp16 mixed precision falls back to float32 on the CPU and only CUDA gets a
    gradient scaler, without which float16 gradients underflow."""
    problems = []
    fp8_option = _fp8_option(cfg)
    reason = torch_compat.fp8_storage_problem(device_type) if fp8_option else None
    if fp8_option and reason:
        problems.append(reason.replace("fp8_base", fp8_option, 1))
    if cfg.full_fp16 and device_type != "cuda":
        problems.append(f"full_fp16 needs a CUDA GPU, and this run trains on {device_type}: fp16 mixed precision "
                        "runs in float32 there, and without CUDA's gradient scaler float16 gradients underflow; "
                        "use full_bf16 with mixed_precision \"bf16\" instead")
    return problems


def _schedule_problems(cfg: TrainConfig) -> list[str]:
    warmup = cfg.lr_warmup_steps
    problems = []
    if warmup >= 1 and warmup != int(warmup):
        problems.append(f"lr_warmup_steps {warmup} must be a whole number of steps, or a fraction "
                        "below 1 of the total steps")
    if cfg.lr_scheduler == "constant" and warmup > 0:
        problems.append("lr_scheduler \"constant\" has no warm-up; use \"constant_with_warmup\" or "
                        "set lr_warmup_steps to 0")
    return problems


def _caching_problems(cfg: TrainConfig) -> list[str]:
    problems = []
    if (cfg.cache_latents or cfg.cache_latents_to_disk) and cfg.random_crop:
        problems.append("cache_latents cannot be combined with random_crop (a cached latent has one "
                        "fixed crop)")
    if cfg.cache_text_encoder_outputs:
        if not cfg.network_train_unet_only:
            problems.append("cache_text_encoder_outputs needs network_train_unet_only (a trained text "
                            "encoder cannot be cached)")
        if cfg.shuffle_caption or cfg.caption_dropout_rate or cfg.caption_tag_dropout_rate:
            problems.append("cache_text_encoder_outputs cannot be combined with shuffle_caption or "
                            "caption dropout (cached captions never change)")
    return problems


def _kv_list_problems(name: str, items: Iterable[str]) -> list[str]:
    bad = [item for item in items if "=" not in item or not item.split("=", 1)[0].strip()]
    if not bad:
        return []
    return [f"{name} entries must look like key=value; these do not: {', '.join(map(repr, bad))}"]
