"""The memory estimate shown with the settings check: a traced training step, with the card's free memory.

The figure is ``train/traced_estimate.py``'s: one training step of the chosen checkpoint's own
architecture (read from its header) with the options a run would get
(``jobs/run_options.trainer_options``, the rule the settings check and the job submission use
too), traced on meta tensors. Tracing takes seconds, so it runs on a background thread
(``traced_estimate.TRACES``): until it is done the line gives the quick formula's figure
(``train/memory_estimate.py``) and says so; the next settings check shows the traced one. It says
where training will run: on the GPU (with the card's free and total memory when this process
already uses CUDA: asking would otherwise start a CUDA context) or, with no GPU, on the CPU in
system memory. The settings that would lower it most are scored with the quick formula (tracing
each would take seconds apiece), and say so. Nothing is estimated before a readable base model
is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from .. import torch_compat
from ..jobs.run_options import trainer_options
from ..models.detect import Architecture
from ..train.config_checks import parse_resolution
from ..train.fit_card import DEFAULT_SIDE as _DEFAULT_SIDE, estimate_gib
from ..train.model_sizes import model_sizes, released_sizes
from ..train.params import get_param
from ..train.traced_estimate import TRACES, TracedEstimate, TraceSettings, TraceUnsupported, released_architecture

TRACED = ("computed from a traced training step of this checkpoint (every tensor's bytes at the peak; "
          "not a measurement: kernels' workspaces and the allocator's cache come on top)")
QUICK = ("the quick formula's figure (model sizes and activation factors from traces of the released "
         "models); the traced figure is being computed and shows at the next settings check")
MIN_SAVING_GB = 0.05
TRACE_PATIENCE_S = 2.0  # how long the settings check waits for a trace before showing the quick figure
MAX_SUGGESTIONS = 4


@dataclass(frozen=True)
class Accelerator:
    """Where training will run: ``kind`` "cuda", "mps" or "cpu"; the card's name, size and free
    memory (GiB) when known."""

    kind: str
    name: str = ""
    total_gb: float | None = None
    free_gb: float | None = None


def local_accelerator() -> Accelerator:
    """The device the trainer will pick (CUDA, else MPS, else the CPU), without starting CUDA here:
    the card's name, size and free memory are read only when this process already uses CUDA
    (inside the WebUI), so the standalone app's page never takes a CUDA context (VRAM) away from
    the trainer."""
    if torch.cuda.is_available():
        info = torch_compat.cuda_memory_info()
        if info is not None:
            free, total = info
            return Accelerator("cuda", torch.cuda.get_device_properties(0).name, total / 2**30, free / 2**30)
        return Accelerator("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return Accelerator("mps", "Apple GPU (memory shared with the system)")
    return Accelerator("cpu")


def vram_text(settings: Mapping[str, Any], model: Architecture | str | None,
              accelerator: Accelerator | None = None, wait: bool = False) -> str:
    """The estimate in words for these settings and the chosen model (its architecture; a family
    name for the released layout), or what is missing for an estimate. ``wait``: trace now rather
    than in the background (tests, scripts)."""
    if model is None:
        return "VRAM estimate: choose a readable base model first."
    family = model if isinstance(model, str) else model.family
    sizes = released_sizes(family) if isinstance(model, str) else model_sizes(model)
    arch = released_architecture(family) if isinstance(model, str) else model
    where = accelerator or local_accelerator()
    fp8 = where.kind == "cuda" and torch_compat.fp8_storage_problem("cuda") is None
    try:
        options = trainer_options(settings)
        quick = _estimate(options, family, sizes)
        cheaper = _suggestions(options, family, sizes, quick, fp8)
        trace_settings = traced_settings(options, family)
    except (TypeError, ValueError) as exc:
        return f"VRAM estimate unavailable: {exc}"
    if where.kind == "cpu" and trace_settings.mixed_precision == "fp16":  # session.resolve_weight_dtype's rule
        trace_settings = replace(trace_settings, mixed_precision="no")
    try:
        traced = TRACES.get(arch, trace_settings, wait=wait, patience=TRACE_PATIENCE_S)
    except Exception:  # the cache keeps the reason (TRACES.error), shown with the quick figure
        traced = None
    if traced is not None:
        context = traced.parts["cuda_context"] / 1024 if where.kind == "cpu" else 0.0  # no CUDA on the CPU
        lines = [_headline(traced.total_gb - context, where), f"Sizes from {sizes.source}; {TRACED}.",
                 _parts(traced, with_context=not context)]
    else:
        failed = TRACES.error(arch, trace_settings)
        if failed and failed.startswith(TraceUnsupported.__name__):
            note = f"not traced ({failed.split(': ', 1)[1]}), so this is the quick formula's figure"
        else:
            note = f"the trace failed ({failed}), so this is the quick formula's figure" if failed else QUICK
        lines = [_headline(quick, where), f"Sizes from {sizes.source}; {note}."]
    if cheaper:
        lines.append("Would lower it (scored with the quick formula): "
                     + ", ".join(f"{what} (saves about {saved:.1f} GiB)" for what, saved in cheaper) + ".")
    return "\n".join(lines)


def traced_settings(options: Mapping[str, Any], family: str) -> TraceSettings:
    """What the trace depends on, from trainer options, by the rules ``train/session.py`` follows:
    the VAE stays loaded for sample images or a random crop and encodes every step only without
    cached latents and with a random crop (else the posteriors are computed up front); the text
    encoders are released when their outputs are cached, they are not trained and no samples are made;
    fp8_base stores the U-Net and text encoders as float8, fp8_base_unet the U-Net only."""
    def value(name: str) -> Any:
        return options.get(name, get_param(name).default)

    train_te = not value("network_train_unet_only") and value("text_encoder_lr") != 0
    samples, random_crop = bool(value("sample_prompts")), bool(value("random_crop"))
    cached_latents = bool(value("cache_latents") or value("cache_latents_to_disk"))
    text_cached = bool(value("cache_text_encoder_outputs")) and not train_te and not samples
    fp8 = torch_compat.float8_storage_dtype() if value("fp8_base") or value("fp8_base_unet") else None
    return TraceSettings(
        resolution=parse_resolution(str(value("resolution") or _DEFAULT_SIDE[family])),
        batch_size=value("train_batch_size"), network_dim=value("network_dim"), conv_dim=value("conv_dim"),
        mixed_precision=value("mixed_precision"), gradient_checkpointing=bool(value("gradient_checkpointing")),
        train_text_encoder=train_te, optimizer_type=value("optimizer_type"),
        vae_on_card=samples or random_crop, vae_each_step=random_crop and not cached_latents,
        text_encoders_on_card=not text_cached, weight_dtype=fp8,
        text_encoder_weight_dtype=fp8 if value("fp8_base") and not value("fp8_base_unet") else None)


def _parts(traced: TracedEstimate, with_context: bool = True) -> str:
    p = {name: value / 1024 for name, value in traced.parts.items()}
    context = f", CUDA context {p['cuda_context']:.1f} GiB" if with_context else ""
    return (f"Parts: frozen weights {p['weights']:.1f} GiB, LoRA {p['lora']:.2f} GiB, optimizer state "
            f"{p['optimizer_state']:.2f} GiB, activations and gradients at the peak ({traced.peak_phase}) "
            f"{p['activations']:.1f} GiB{context}.")


def _headline(gib: float, where: Accelerator) -> str:
    if where.kind == "cpu":
        return (f"No GPU found: training will run on the CPU, using about {gib:.1f} GiB of system memory, "
                "and many times slower than on a GPU.")
    if where.kind == "mps":
        return f"Estimated memory: about {gib:.1f} GiB on the {where.name}."
    if where.total_gb is not None:
        free = f" ({where.free_gb:.1f} GiB free now)" if where.free_gb is not None else ""
        return f"Estimated VRAM: about {gib:.1f} GiB of the {where.total_gb:.1f} GiB of the {where.name}{free}."
    return f"Estimated VRAM: about {gib:.1f} GiB."


def _estimate(options: Mapping[str, Any], family: str, sizes) -> float:
    return estimate_gib(options, family, sizes)  # the quick formula, as Fit my card scores it


def _changes(options: Mapping[str, Any], family: str, fp8: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """The memory savers these settings do not use yet: (what, the options that use it); fp8_base
    only where the trainer can use it (``fp8``: a CUDA card)."""
    def value(name: str) -> Any:
        return options.get(name, get_param(name).default)

    found: list[tuple[str, dict[str, Any]]] = []
    if not value("cache_latents") and value("random_crop"):
        found.append(("random_crop off, cache_latents on", {"random_crop": False, "cache_latents": True}))
    if not value("gradient_checkpointing"):
        found.append(("gradient_checkpointing on", {"gradient_checkpointing": True}))
    if value("mixed_precision") not in ("fp16", "bf16"):
        found.append(("mixed_precision bf16 or fp16", {"mixed_precision": "bf16"}))
    if family == "sdxl" and not value("network_train_unet_only"):
        found.append(("network_train_unet_only on", {"network_train_unet_only": True}))
    if value("optimizer_type") in ("AdamW", "Lion", "SGDNesterov", "Prodigy"):
        found.append(("optimizer_type AdamW8bit (needs bitsandbytes) or Adafactor", {"optimizer_type": "Adafactor"}))
    if fp8 and value("mixed_precision") in ("fp16", "bf16") and not value("fp8_base"):
        found.append(("fp8_base on", {"fp8_base": True, "fp8_base_unet": False}))
    batch = value("train_batch_size")
    if isinstance(batch, int) and batch > 1:
        found.append(("train_batch_size 1", {"train_batch_size": 1}))
    return found


def _suggestions(options: Mapping[str, Any], family: str, sizes, now: float,
                 fp8: bool = False) -> list[tuple[str, float]]:
    """The savers that lower the quick estimate most (at least `MIN_SAVING_GB`), each with its saving."""
    scored = []
    for what, change in _changes(options, family, fp8):
        saved = now - _estimate({**options, **change}, family, sizes)
        if saved >= MIN_SAVING_GB:
            scored.append((saved, what))
    scored.sort(key=lambda item: -item[0])
    return [(what, saved) for saved, what in scored[:MAX_SUGGESTIONS]]
