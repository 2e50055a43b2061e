"""Optimizers by sd-scripts name: a small registry of builders, optional packages imported on demand.

Names match case-insensitively (`adamw8bit` is `AdamW8bit`). Optional packages (bitsandbytes,
lion-pytorch, prodigyopt) are imported only when their optimizer is asked for; a missing one raises
`OptimizerUnavailable` naming the package and the pip command. Adafactor is torch's own
(`torch.optim.Adafactor`, torch 2.5 and newer); sd-scripts used the transformers class, so its
transformers-only options are translated or dropped (`optimizer_notes` reports which).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable

import torch
from torch.optim import Optimizer

from .. import torch_compat
from .config import parse_kv_args
from .params import OPTIMIZER_NAMES

SGD_NESTEROV_DEFAULTS = {"momentum": 0.9, "nesterov": True}
ADAFACTOR_RENAMES = {"decay_rate": "beta2_decay", "clip_threshold": "d"}
ADAFACTOR_DROPPED = ("relative_step", "scale_parameter", "warmup_init")
ADAPTIVE_LR_OPTIMIZERS = ("Prodigy",)


class OptimizerUnavailable(RuntimeError):
    """The optimizer needs a package (or torch version) that this installation lacks."""


class OptimizerArgError(ValueError):
    """The optimizer name or its optimizer_args are not accepted."""


def _load_module(module: str, package: str, optimizer: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise OptimizerUnavailable(
            f"optimizer {optimizer} needs the '{package}' package, which is not installed "
            f"({exc}); install it with: pip install {package}") from exc
    except Exception as exc:  # bitsandbytes raises RuntimeError when its CUDA library is unusable
        raise OptimizerUnavailable(
            f"optimizer {optimizer}: the '{package}' package is installed but failed to load: {exc}") from exc


def _adamw(params: Any, lr: float, kwargs: dict) -> Optimizer:
    return torch.optim.AdamW(params, lr=lr, **kwargs)


def _adamw_8bit(params: Any, lr: float, kwargs: dict) -> Optimizer:
    bnb = _load_module("bitsandbytes", "bitsandbytes", "AdamW8bit")
    return bnb.optim.AdamW8bit(params, lr=lr, **kwargs)


def _lion(params: Any, lr: float, kwargs: dict) -> Optimizer:
    lion = _load_module("lion_pytorch", "lion-pytorch", "Lion")
    return lion.Lion(params, lr=lr, **kwargs)


def _lion_8bit(params: Any, lr: float, kwargs: dict) -> Optimizer:
    bnb = _load_module("bitsandbytes", "bitsandbytes", "Lion8bit")
    return bnb.optim.Lion8bit(params, lr=lr, **kwargs)


def _sgd_nesterov(params: Any, lr: float, kwargs: dict) -> Optimizer:
    return torch.optim.SGD(params, lr=lr, **{**SGD_NESTEROV_DEFAULTS, **kwargs})


def _prodigy(params: Any, lr: float, kwargs: dict) -> Optimizer:
    prodigy = _load_module("prodigyopt", "prodigyopt", "Prodigy")
    return prodigy.Prodigy(params, lr=lr, **kwargs)


def _adafactor(params: Any, lr: float, kwargs: dict) -> Optimizer:
    adafactor = torch_compat.adafactor_class()
    if adafactor is None:
        raise OptimizerUnavailable(
            f"optimizer Adafactor needs torch 2.5 or newer (torch.optim.Adafactor); this torch is "
            f"{torch_compat.version_text()}. Choose another optimizer (AdamW, Lion, Prodigy) or update torch.")
    return adafactor(params, lr=lr, **adafactor_kwargs(kwargs))


def adafactor_kwargs(kwargs: dict) -> dict:
    """transformers-style Adafactor options as torch's Adafactor names them (see ADAFACTOR_*)."""
    translated = {}
    for key, value in kwargs.items():
        if key in ADAFACTOR_DROPPED:
            continue
        translated[ADAFACTOR_RENAMES.get(key, key)] = value
    return translated


BUILDERS: dict[str, Callable[[Any, float, dict], Optimizer]] = {
    "AdamW": _adamw,
    "AdamW8bit": _adamw_8bit,
    "Lion": _lion,
    "Lion8bit": _lion_8bit,
    "SGDNesterov": _sgd_nesterov,
    "Prodigy": _prodigy,
    "Adafactor": _adafactor,
}


def canonical_optimizer_name(name: str) -> str:
    """The registry spelling of `name` (case-insensitive); OptimizerArgError listing the known ones."""
    for known in OPTIMIZER_NAMES:
        if known.lower() == str(name).strip().lower():
            return known
    raise OptimizerArgError(f"unknown optimizer_type {name!r}; known: {', '.join(OPTIMIZER_NAMES)}")


def parse_optimizer_args(items: Iterable[str]) -> dict[str, Any]:
    """sd-scripts optimizer_args ("weight_decay=0.1", "betas=0.9,0.99") as keyword arguments."""
    return parse_kv_args(items, "optimizer_args")


def make_optimizer(name: str, param_groups: Any, lr: float,
                   optimizer_args: dict[str, Any] | None = None) -> Optimizer:
    """Build optimizer `name` over `param_groups` (tensors or group dicts) with default rate `lr`."""
    canonical = canonical_optimizer_name(name)
    kwargs = dict(optimizer_args or {})
    _check_one_rate(canonical, param_groups, lr)
    try:
        return BUILDERS[canonical](param_groups, lr, kwargs)
    except TypeError as exc:
        raise OptimizerArgError(f"optimizer {canonical} does not accept optimizer_args "
                                f"{sorted(kwargs)}: {exc}") from exc
    except ValueError as exc:
        raise OptimizerArgError(f"optimizer {canonical}: {exc} (optimizer_args {kwargs})") from exc


def _check_one_rate(canonical: str, param_groups: Any, lr: float) -> None:
    """Prodigy estimates one step size for all groups and refuses, at its first step, groups whose
    rates differ other than by being 0; LoRA+, block lr weights and a text_encoder_lr unlike unet_lr
    all make such groups, so say so before training starts."""
    if canonical not in ADAPTIVE_LR_OPTIMIZERS or not isinstance(param_groups, (list, tuple)):
        return
    rates = sorted({g.get("lr", lr) for g in param_groups if isinstance(g, dict)} - {0, 0.0})
    if len(rates) > 1:
        names = sorted({str(g.get("name")) for g in param_groups if isinstance(g, dict) and g.get("name")})
        raise OptimizerArgError(
            f"optimizer {canonical} needs one learning rate for every parameter group, got {rates}"
            + (f" ({', '.join(names)})" if names else "")
            + ": LoRA+ ratios, block lr weights and a text_encoder_lr different from unet_lr each give "
              "several; use another optimizer or drop them")


def optimizer_notes(name: str, lr: float, optimizer_args: dict[str, Any] | None = None) -> list[str]:
    """Warnings worth showing before training with this optimizer (nothing is built)."""
    canonical = canonical_optimizer_name(name)
    args = optimizer_args or {}
    notes = []
    if canonical in ADAPTIVE_LR_OPTIMIZERS and lr <= 0.1:
        notes.append(f"{canonical} sets its own step size; its learning rate is a multiplier, usually "
                     f"1.0 (got {lr})")
    dropped = [key for key in ADAFACTOR_DROPPED if key in args]
    if canonical == "Adafactor" and dropped:
        notes.append("Adafactor: torch's Adafactor is used, which always scales steps relative to the "
                     f"parameters and caps them at the learning rate; ignored: {', '.join(dropped)}")
    return notes


def optimizer_description(optimizer: Optimizer, optimizer_args: dict[str, Any] | None = None) -> str:
    """`module.Class(k=v,...)`, the form sd-scripts stores as ss_optimizer in LoRA metadata."""
    cls = type(optimizer)
    args = ",".join(f"{k}={v}" for k, v in (optimizer_args or {}).items())
    return f"{cls.__module__}.{cls.__name__}" + (f"({args})" if args else "")
