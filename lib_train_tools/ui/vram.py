"""The VRAM estimate shown with the settings check, from ``train/memory_estimate.py``.

It estimates the trainer options a run would get (``jobs/run_options.trainer_options``, the rule the
settings check and the job submission use too). The estimate needs the base model's family, so
nothing is estimated before a readable base model is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..jobs.run_options import trainer_options
from ..train.memory_estimate import estimate_vram
from ..train.params import get_param

_DEFAULT_SIDE = {"sd1": 512, "sd2": 512, "sdxl": 1024}


def vram_text(settings: Mapping[str, Any], family: str | None) -> str:
    """'Estimated VRAM: about 5.8 GiB ...', or what is missing for an estimate."""
    if family is None:
        return "VRAM estimate: choose a readable base model first."
    try:
        options = trainer_options(settings)

        def value(name: str) -> Any:
            return options.get(name, get_param(name).default)

        estimate = estimate_vram(
            family, resolution=value("resolution") or _DEFAULT_SIDE[family],
            batch_size=value("train_batch_size"), network_dim=value("network_dim"),
            conv_dim=value("conv_dim"),  # set exactly when the settings train LoCon
            mixed_precision=value("mixed_precision"), gradient_checkpointing=value("gradient_checkpointing"),
            cache_latents=value("cache_latents"),
            train_text_encoder=not value("network_train_unet_only") and value("text_encoder_lr") != 0,
            optimizer_type=value("optimizer_type"),
        )
    except (TypeError, ValueError) as exc:
        return f"VRAM estimate unavailable: {exc}"
    return f"Estimated VRAM: about {estimate.total_gb:.1f} GiB (a rough estimate; real use varies by ±30 %)."
