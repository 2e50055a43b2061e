"""The VRAM estimate shown with the settings check, from ``train/memory_estimate.py``.

That module is written on another branch; until it is installed the estimate is simply not
shown (an empty string). The estimate needs the base model's family, so nothing is shown before
a readable base model is chosen either.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from ..train.params import get_param
from .train_settings import trainer_options

_DEFAULT_SIDE = {"sd1": 512, "sd2": 512, "sdxl": 1024}


def vram_text(settings: Mapping[str, Any], family: str | None) -> str:
    """'Estimated VRAM: about 5.8 GiB ...', or "" without an estimator or a known family."""
    try:
        module = importlib.import_module("lib_train_tools.train.memory_estimate")
    except ImportError:
        return ""
    if family is None:
        return "VRAM estimate: choose a readable base model first."
    options = trainer_options(settings)

    def value(name: str) -> Any:
        return options.get(name, get_param(name).default)

    locon = settings.get("network_type") == "LoCon"
    try:
        estimate = module.estimate_vram(
            family, resolution=value("resolution") or _DEFAULT_SIDE[family],
            batch_size=value("train_batch_size"), network_dim=value("network_dim"),
            conv_dim=(value("conv_dim") or value("network_dim")) if locon else None,
            mixed_precision=value("mixed_precision"), gradient_checkpointing=value("gradient_checkpointing"),
            cache_latents=value("cache_latents"),
            train_text_encoder=not value("network_train_unet_only") and value("text_encoder_lr") != 0,
            optimizer_type=value("optimizer_type"),
        )
    except (TypeError, ValueError) as exc:
        return f"VRAM estimate unavailable: {exc}"
    return f"Estimated VRAM: about {estimate.total_gb:.1f} GiB (a rough estimate; real use varies by ±30 %)."
