""""Fit my card": the settings changes that bring the VRAM estimate under a card's size.

`fit_settings` takes a run's trainer options (``jobs/run_options.trainer_options``), the model's
sizes (``model_sizes.py``) and the card's size, and applies memory savers one at a time, re-running
`memory_estimate.estimate_vram` after each, until the estimate fits the card less a margin. The
savers come in the order that costs the least training quality and speed:

1. ``mixed_precision`` bf16 (fp16 on cards without bf16) when it is "no". It comes first, before
   caching latents, because it costs almost nothing and usually *gains* speed: the frozen base
   weights and the activations are held in 16 bits (tensor cores run them several times faster),
   while the LoRA weights, their gradients and the optimizer state stay in float32, the
   mixed-precision recipe of Micikevicius et al. 2018 ("Mixed Precision Training"). It also saves
   the most: it halves ``base_weights`` and the activation terms of the estimate.
2. (``cache_latents`` is not among them: this trainer encodes every image once before the first
   step unless ``random_crop`` asks for a new crop each time (``session.py``), so caching saves no
   memory here; ``estimate_gib`` counts the VAE's per-step encoding only in that case.)
3. SDXL only: ``network_train_unet_only`` (the usual SDXL recipe; the second text encoder is large)
   and, when the captions never change (no shuffling, no caption dropout),
   ``cache_text_encoder_outputs`` too, which the trainer implements for U-Net-only runs. The
   estimate does not count the cache itself; it saves the encoders' runs every step.
4. ``gradient_checkpointing``: recomputes activations in the backward pass (about 20-30 % slower,
   no quality cost; Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").
5. An optimizer with smaller state: AdamW8bit when bitsandbytes is importable (Dettmers et al.
   2022, "8-bit Optimizers via Block-wise Quantization"; same learning rate), else Adafactor
   (Shazeer & Stern 2018; factored second moments). Only when it holds less state than the
   current one.
6. ``fp8_base`` (sd-scripts' option): the frozen U-Net and text-encoder weights are stored as
   float8_e4m3fn and cast back to the working precision layer by layer (``models/fp8_weights.py``):
   half their memory, at the cost of rounding the base model to 3 mantissa bits, so after the
   savers that cost nothing in quality. Only on CUDA (the caller says whether fp8 can be used).
7. A lower ``train_batch_size``, one at a time (noisier gradients; raise
   gradient_accumulation_steps to keep the effective batch).
8. A lower ``resolution``, 64 px per step, never below `MIN_SIDE` (the model's native detail is
   lost below it).

It stops at the first step that fits. Pure: it reads no device and loads no weight.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .config_checks import parse_resolution
from .memory_estimate import HALF_PRECISIONS, OPTIMIZER_STATE_BYTES, estimate_vram, fp8_choice
from .model_sizes import ModelSizes
from .params import get_param

DEFAULT_MARGIN_GIB = 1.0   # room for the desktop, other programs and the estimate's error
DEFAULT_SIDE = {"sd1": 512, "sd2": 512, "sdxl": 1024}
MIN_SIDE = {"sd1": 512, "sd2": 512, "sdxl": 768}
RESOLUTION_STEP = 64


@dataclass(frozen=True)
class FitStep:
    """One saver applied: the options it changed, the estimate after it (GiB) and why it was chosen."""

    what: str
    changes: dict[str, Any]
    estimate_gib: float
    why: str


@dataclass(frozen=True)
class FitResult:
    """What `fit_settings` found: ``fits`` whether the last estimate is within ``budget_gib``."""

    card_gib: float
    budget_gib: float
    start_gib: float
    steps: tuple[FitStep, ...]
    fits: bool

    @property
    def final_gib(self) -> float:
        """The estimate after the last step (the smallest reached when nothing fits)."""
        return self.steps[-1].estimate_gib if self.steps else self.start_gib

    @property
    def changes(self) -> dict[str, Any]:
        """Every option changed, with its final value."""
        merged: dict[str, Any] = {}
        for step in self.steps:
            merged.update(step.changes)
        return merged

    def summary(self) -> str:
        """The result in words, for the UI."""
        head = f"Card {self.card_gib:g} GiB, keeping {self.card_gib - self.budget_gib:g} GiB free: "
        if not self.steps:
            if self.fits:
                return head + f"the settings already fit (about {self.start_gib:.1f} GiB); nothing changed."
            return head + f"nothing can be lowered; the estimate stays about {self.start_gib:.1f} GiB."
        lines = [f"- {step.what} (about {step.estimate_gib:.1f} GiB): {step.why}" for step in self.steps]
        if self.fits:
            verdict = f"fits: about {self.start_gib:.1f} -> {self.final_gib:.1f} GiB."
        else:
            verdict = (f"does NOT fit even with every saver: the smallest estimate reached is about "
                       f"{self.final_gib:.1f} GiB (from {self.start_gib:.1f}).")
        return "\n".join([head + verdict, *lines])


def estimate_gib(options: Mapping[str, Any], family: str, sizes: ModelSizes) -> float:
    """The VRAM estimate (GiB) of trainer ``options``; unset options take the registry's defaults."""
    value = _reader(options)
    return estimate_vram(
        family, resolution=value("resolution") or DEFAULT_SIDE[family],
        batch_size=value("train_batch_size"), network_dim=value("network_dim"), conv_dim=value("conv_dim"),
        mixed_precision=value("mixed_precision"), gradient_checkpointing=value("gradient_checkpointing"),
        cache_latents=latents_encoded_once(value), train_text_encoder=_trains_text_encoder(value),
        optimizer_type=value("optimizer_type"), sizes=sizes,
        fp8=fp8_choice(value("fp8_base"), value("fp8_base_unet")),
    ).total_gb


def fit_settings(options: Mapping[str, Any], family: str, sizes: ModelSizes, card_gib: float,
                 margin: float = DEFAULT_MARGIN_GIB, bf16: bool = True,
                 have_bitsandbytes: bool | None = None, fp8: bool = True) -> FitResult:
    """The savers (module docstring order) that bring the estimate within ``card_gib - margin``.

    ``bf16``: whether the card supports bfloat16 (else fp16 is chosen); ``have_bitsandbytes``:
    whether AdamW8bit can be used (None: whether the package is importable); ``fp8``: whether
    ``fp8_base`` can be used (a CUDA card and torch >= 2.1). ValueError for a card
    no larger than the margin or an unknown family."""
    if family not in DEFAULT_SIDE:
        raise ValueError(f"family {family!r} is not one of {', '.join(DEFAULT_SIDE)}")
    if card_gib <= margin or margin < 0:
        raise ValueError(f"card size {card_gib:g} GiB must exceed the margin ({margin:g} GiB, not negative)")
    if have_bitsandbytes is None:
        have_bitsandbytes = importlib.util.find_spec("bitsandbytes") is not None
    budget = card_gib - margin
    current = dict(options)
    start = estimate_gib(current, family, sizes)
    steps: list[FitStep] = []
    now = start
    if now > budget:
        for what, changes, why in _savers(current, family, bf16, have_bitsandbytes, fp8):
            current.update(changes)
            after = estimate_gib(current, family, sizes)
            steps.append(FitStep(what, dict(changes), round(after, 2), why))
            now = after
            if now <= budget:
                break
    return FitResult(card_gib, budget, round(start, 2), tuple(steps), now <= budget)


Saver = tuple[str, dict[str, Any], str]


def _savers(current: dict[str, Any], family: str, bf16: bool, have_bnb: bool, fp8: bool) -> Iterator[Saver]:
    """The applicable savers in order; each looks at ``current`` as the earlier ones left it."""
    value = _reader(current)
    if value("mixed_precision") not in HALF_PRECISIONS:
        precision = "bf16" if bf16 else "fp16"
        yield (f"mixed_precision {precision}", {"mixed_precision": precision},
               "halves the frozen weights and activations; faster on tensor cores, LoRA weights stay float32")
    if family == "sdxl" and _trains_text_encoder(value):
        changes: dict[str, Any] = {"network_train_unet_only": True}
        why = "the usual SDXL recipe: no text-encoder LoRA, gradients or optimizer state"
        if not (value("shuffle_caption") or value("caption_dropout_rate") or value("caption_tag_dropout_rate")
                or value("cache_text_encoder_outputs")):
            changes["cache_text_encoder_outputs"] = True
            why += "; captions are encoded once (they never change)"
        yield ("U-Net only" + (", text-encoder outputs cached" if len(changes) > 1 else ""), changes, why)
    if not value("gradient_checkpointing"):
        yield ("gradient_checkpointing on", {"gradient_checkpointing": True},
               "recomputes activations in the backward pass: far less memory, about 20-30 % slower")
    optimizer = "AdamW8bit" if have_bnb else "Adafactor"
    if OPTIMIZER_STATE_BYTES.get(value("optimizer_type"), 8) > OPTIMIZER_STATE_BYTES[optimizer]:
        opt_changes: dict[str, Any] = {"optimizer_type": optimizer}
        why = ("8-bit optimizer state (bitsandbytes), same learning rate" if have_bnb else
               "factored optimizer state (bitsandbytes is not installed, so no 8-bit AdamW)")
        if optimizer == "Adafactor" and value("optimizer_args"):
            opt_changes["optimizer_args"] = ()
            why += "; the previous optimizer's arguments are cleared"
        yield f"optimizer_type {optimizer}", opt_changes, why
    if fp8 and not value("fp8_base"):
        yield ("fp8_base on", {"fp8_base": True, "fp8_base_unet": False},
               "frozen U-Net and text-encoder weights stored in 8 bits (float8_e4m3fn), computed in "
               f"{value('mixed_precision')}: half their memory, a small rounding of the base model")
    yield from _batch_savers(current, value)
    yield from _resolution_savers(current, value, family)


def _batch_savers(current: dict[str, Any], value: Callable[[str], Any]) -> Iterator[Saver]:
    while isinstance(value("train_batch_size"), int) and value("train_batch_size") > 1:
        batch = value("train_batch_size") - 1
        yield (f"train_batch_size {batch}", {"train_batch_size": batch},
               "fewer images per step (noisier steps; raise gradient_accumulation_steps to keep the effective batch)")


def _resolution_savers(current: dict[str, Any], value: Callable[[str], Any], family: str) -> Iterator[Saver]:
    floor = MIN_SIDE[family]
    while True:
        text = value("resolution") or str(DEFAULT_SIDE[family])
        width, height = parse_resolution(str(text))
        lower = tuple(side - RESOLUTION_STEP if side - RESOLUTION_STEP >= floor else side for side in (width, height))
        if lower == (width, height):
            return
        new = str(lower[0]) if lower[0] == lower[1] else f"{lower[0]},{lower[1]}"
        yield (f"resolution {new}", {"resolution": new},
               f"fewer latent pixels per image (less detail; not below {floor} px for {family.upper()})")


def _reader(options: Mapping[str, Any]) -> Callable[[str], Any]:
    def value(name: str) -> Any:
        return options[name] if name in options else get_param(name).default
    return value


def latents_encoded_once(value: Callable[[str], Any]) -> bool:
    """Whether the run encodes each image once (no VAE work during steps): with cached latents, or
    without a random crop, where ``session.py`` computes the posteriors before the first step."""
    return bool(value("cache_latents") or value("cache_latents_to_disk") or not value("random_crop"))


def _trains_text_encoder(value: Callable[[str], Any]) -> bool:
    return not value("network_train_unet_only") and value("text_encoder_lr") != 0
