"""The memory estimate shown with the settings check, from ``train/memory_estimate.py``.

It estimates the trainer options a run would get (``jobs/run_options.trainer_options``, the rule the
settings check and the job submission use too) for the chosen checkpoint's own sizes, counted from
its header (``train/model_sizes.py``), so a small model is not estimated like SDXL. It says where
training will run: on the GPU (with the card's size when the process already uses it) or, with no
GPU, on the CPU in system memory. And it lists the settings that would lower it most, each with the
estimate it would give. Nothing is estimated before a readable base model is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..jobs.run_options import trainer_options
from ..models.detect import Architecture
from ..train.memory_estimate import estimate_vram
from ..train.model_sizes import model_sizes, released_sizes
from ..train.params import get_param

_DEFAULT_SIDE = {"sd1": 512, "sd2": 512, "sdxl": 1024}
ACCURACY = ("an estimate from the model's sizes and activation factors calibrated on published "
            "figures, not a measurement: expect ±30 %")
MIN_SAVING_GB = 0.05
MAX_SUGGESTIONS = 4


@dataclass(frozen=True)
class Accelerator:
    """Where training will run: ``kind`` "cuda", "mps" or "cpu"; the card's name and size when known."""

    kind: str
    name: str = ""
    total_gb: float | None = None


def local_accelerator() -> Accelerator:
    """The device the trainer will pick (CUDA, else MPS, else the CPU), without starting CUDA here:
    the card's name and size are read only when this process already uses CUDA (inside the WebUI),
    so the standalone app's page never takes a CUDA context (VRAM) away from the trainer."""
    if torch.cuda.is_available():
        if torch.cuda.is_initialized():
            props = torch.cuda.get_device_properties(0)
            return Accelerator("cuda", props.name, props.total_memory / 2**30)
        return Accelerator("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return Accelerator("mps", "Apple GPU (memory shared with the system)")
    return Accelerator("cpu")


def vram_text(settings: Mapping[str, Any], model: Architecture | str | None,
              accelerator: Accelerator | None = None) -> str:
    """The estimate in words for these settings and the chosen model (its architecture; a family
    name for the released layout), or what is missing for an estimate."""
    if model is None:
        return "VRAM estimate: choose a readable base model first."
    family = model if isinstance(model, str) else model.family
    sizes = released_sizes(family) if isinstance(model, str) else model_sizes(model)
    try:
        options = trainer_options(settings)
        gib = _estimate(options, family, sizes)
        cheaper = _suggestions(options, family, sizes, gib)
    except (TypeError, ValueError) as exc:
        return f"VRAM estimate unavailable: {exc}"
    where = accelerator or local_accelerator()
    lines = [_headline(gib, where), f"Counted for {sizes.source}; {ACCURACY}."]
    if cheaper:
        lines.append("Would lower it: " + ", ".join(f"{what} (about {after:.1f} GiB)" for what, after in cheaper) + ".")
    return "\n".join(lines)


def _headline(gib: float, where: Accelerator) -> str:
    if where.kind == "cpu":
        return (f"No GPU found: training will run on the CPU, using about {gib:.1f} GiB of system memory, "
                "and many times slower than on a GPU.")
    if where.kind == "mps":
        return f"Estimated memory: about {gib:.1f} GiB on the {where.name}."
    if where.total_gb is not None:
        return f"Estimated VRAM: about {gib:.1f} GiB of the {where.total_gb:.1f} GiB of the {where.name}."
    return f"Estimated VRAM: about {gib:.1f} GiB."


def _estimate(options: Mapping[str, Any], family: str, sizes) -> float:
    def value(name: str) -> Any:
        return options.get(name, get_param(name).default)

    return estimate_vram(
        family, resolution=value("resolution") or _DEFAULT_SIDE[family],
        batch_size=value("train_batch_size"), network_dim=value("network_dim"),
        conv_dim=value("conv_dim"),  # set exactly when the settings train LoCon
        mixed_precision=value("mixed_precision"), gradient_checkpointing=value("gradient_checkpointing"),
        cache_latents=value("cache_latents"),
        train_text_encoder=not value("network_train_unet_only") and value("text_encoder_lr") != 0,
        optimizer_type=value("optimizer_type"), sizes=sizes,
    ).total_gb


def _changes(options: Mapping[str, Any], family: str) -> list[tuple[str, dict[str, Any]]]:
    """The memory savers these settings do not use yet: (what, the options that use it)."""
    def value(name: str) -> Any:
        return options.get(name, get_param(name).default)

    found: list[tuple[str, dict[str, Any]]] = []
    if not value("cache_latents"):
        found.append(("cache_latents on", {"cache_latents": True}))
    if not value("gradient_checkpointing"):
        found.append(("gradient_checkpointing on", {"gradient_checkpointing": True}))
    if value("mixed_precision") not in ("fp16", "bf16"):
        found.append(("mixed_precision bf16 or fp16", {"mixed_precision": "bf16"}))
    if family == "sdxl" and not value("network_train_unet_only"):
        found.append(("network_train_unet_only on", {"network_train_unet_only": True}))
    if value("optimizer_type") in ("AdamW", "Lion", "SGDNesterov", "Prodigy"):
        found.append(("optimizer_type AdamW8bit (needs bitsandbytes) or Adafactor", {"optimizer_type": "Adafactor"}))
    batch = value("train_batch_size")
    if isinstance(batch, int) and batch > 1:
        found.append(("train_batch_size 1", {"train_batch_size": 1}))
    return found


def _suggestions(options: Mapping[str, Any], family: str, sizes, now: float) -> list[tuple[str, float]]:
    """The savers that lower the estimate most (at least `MIN_SAVING_GB`), each with its estimate."""
    scored = []
    for what, change in _changes(options, family):
        after = _estimate({**options, **change}, family, sizes)
        if now - after >= MIN_SAVING_GB:
            scored.append((now - after, what, after))
    scored.sort(key=lambda item: -item[0])
    return [(what, after) for _, what, after in scored[:MAX_SUGGESTIONS]]
