"""The quick VRAM estimate: a formula whose activation factors come from traced training steps.

The settings check shows the traced figure (``traced_estimate.py``: one training step of the
chosen checkpoint traced on meta tensors, seconds of CPU). This formula answers in microseconds,
for what needs many estimates ("Fit my card" in ``fit_card.py``, the tab's "Would lower it" list)
and for the moment before the trace is done. It adds up

* ``base_weights``: the frozen U-Net, text encoder(s) and VAE at the working precision (2 bytes
  per parameter with fp16/bf16 mixed precision, 4 without). Parameter counts are the chosen
  checkpoint's own when its sizes are given (`model_sizes.py` counts them from the header), else
  those of the released SD1.5 / SD2.1 / SDXL configs (a test recounts them). Exact.
* ``lora_training``: the LoRA weights, their gradients (4 + 4 bytes each, always float32) and the
  optimizer state (`OPTIMIZER_STATE_BYTES`; a test checks torch's AdamW and SGD against it; the
  bitsandbytes, lion and prodigy numbers are their published state layouts). Exact for AdamW.
* ``unet_activations``: what the U-Net keeps for the backward pass, linear in batch x latent pixels
  (fused attention keeps no [tokens x tokens] matrix). TRACED: `UNET_ACTIVATION_MB` is the traced
  peak per 512x512 image (a 64x64 latent) at half precision without checkpointing,
  `CHECKPOINTING_FACTOR` the traced share left with checkpointing (LoRA gradients, counted above,
  taken out), `FULL_PRECISION_FACTOR` the traced growth without mixed precision (not 2: autocast
  already keeps norms and the loss in float32). The released layouts at 512 px (SD1, SD2) and
  1024 px (SDXL), rank 32, re-traced by ``tests/train/test_memory_estimate.py``. Scaling by pixels
  is linear to about 2 % (SD1 at 768 px traces 2.22x its 512 px figure for 2.25x the pixels).
* ``text_encoder_activations``: the same for trained text encoders (77 tokens): TRACED, as
  `TEXT_ENCODER_SAVED_PER_LAYER` hidden-size tensors per layer (their LoRA runs in float32: the
  loop autocasts the U-Net only).
* ``vae_encoding``: without cache_latents, the VAE encoder's full-resolution feature maps
  (`VAE_ENCODE_MB`, a CONSTANT, not traced; it adds where the traced step takes the larger of the
  encode and the U-Net's passes, so it errs high).
* ``overhead``: the CUDA context, `CUDA_CONTEXT_MB`, a CONSTANT (see there).

Until these factors were traced they were calibrated on published totals (3000 / 4000 MiB per
512x512 image, 15 % with checkpointing, 600 MiB overhead), which count what nvidia-smi shows
(the allocator's cache, other implementations); the traced figures count the tensors alive at the
peak, so they are lower. Neither was measured on a GPU here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from .config_checks import parse_resolution
from .model_sizes import RELEASED_UNET_WIDTH, RELEASED_VAE_WIDTH, ModelSizes, released_sizes

MB = 2**20
TEXT_TOKENS = 77


class _PartCounts(TypedDict):
    unet: int
    text_encoders: tuple[int, ...]
    vae: int


# Parameter counts of the released configs (SD1 U-Net 859.5M, CLIP-L 123.1M, SDXL U-Net 2.57G ...).
PARAMETER_COUNTS: dict[str, _PartCounts] = {
    "sd1": {"unet": 859_520_964, "text_encoders": (123_060_480,), "vae": 83_653_863},
    "sd2": {"unet": 865_910_724, "text_encoders": (340_387_840,), "vae": 83_653_863},
    "sdxl": {"unet": 2_567_463_684, "text_encoders": (123_060_480, 694_659_840), "vae": 83_653_863},
}
# LoRA parameters per unit of rank (sum of in + out features, or in*k*k + out for a kxk conv) of
# kohya's module set: U-Net linear layers, text-encoder layers, LoCon's extra 1x1/linear layers
# (rank network_dim) and its 3x3 convolutions (rank conv_dim).
LORA_PARAMS_PER_RANK = {
    "sd1": {"unet": 423_936, "text_encoder": 165_888, "locon_linear": 82_880, "locon_conv": 544_000},
    "sd2": {"unet": 432_128, "text_encoder": 423_936, "locon_linear": 82_880, "locon_conv": 544_000},
    "sdxl": {"unet": 2_659_840, "text_encoder": 903_168, "locon_linear": 58_560, "locon_conv": 355_840},
}
# (hidden size, layers) of each text encoder, for its activations.
TEXT_ENCODER_SHAPES = {"sd1": ((768, 12),), "sd2": ((1024, 23),), "sdxl": ((768, 12), (1280, 32))}
FAMILIES = tuple(PARAMETER_COUNTS)

# Traced factors (module docstring; re-traced by tests/train/test_memory_estimate.py): U-Net
# activation MiB per 512x512 image (a 64x64 latent) at half precision without checkpointing; the
# share left with checkpointing; the growth without mixed precision.
UNET_ACTIVATION_MB = {"sd1": 1203.0, "sd2": 1203.0, "sdxl": 2098.0}
CHECKPOINTING_FACTOR = {"sd1": 0.13, "sd2": 0.13, "sdxl": 0.11}
FULL_PRECISION_FACTOR = 1.58
REFERENCE_LATENT_PIXELS = 64 * 64
# Hidden-size tensors a trained text-encoder layer keeps for its backward pass (traced).
TEXT_ENCODER_SAVED_PER_LAYER = {"sd1": 34, "sd2": 29, "sdxl": 54}
# VAE encoder feature maps held per 512x512 image at half precision (no gradients; a constant).
VAE_ENCODE_MB = 256.0
# The CUDA context: driver and runtime state plus the kernels torch loads, allocated outside
# torch's allocator (max_memory_allocated never shows it; nvidia-smi does). PyTorch's "CUDA
# semantics" notes put it at a few hundred MiB; with lazy module loading (CUDA_MODULE_LOADING=LAZY,
# torch's default since 1.13 with CUDA 11.7) it is about 300-500 MiB on current cards and drivers:
# 450 MiB, plus cuBLAS' workspace (up to 32 MiB on Hopper). A constant: nothing here measures it.
CUDA_CONTEXT_MB = 480.0
OVERHEAD_MB = CUDA_CONTEXT_MB
LORA_BYTES = 4 + 4  # float32 weight and gradient
OPTIMIZER_STATE_BYTES = {"AdamW": 8, "AdamW8bit": 2, "Lion": 4, "Lion8bit": 1, "SGDNesterov": 4, "Prodigy": 16,
                         "Adafactor": 1}
HALF_PRECISIONS = ("fp16", "bf16")
FP8_CHOICES = ("", "unet", "all")

Resolution = int | str | tuple


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory in MiB, and the parts it adds up (see the module docstring)."""

    total_mb: float
    parts: dict

    @property
    def total_gb(self) -> float:
        return self.total_mb / 1024.0


def estimate_vram(family: str, resolution: Resolution = 512, batch_size: int = 1, network_dim: int = 32,
                  conv_dim: int | None = None, mixed_precision: str = "fp16", gradient_checkpointing: bool = False,
                  cache_latents: bool = True, train_text_encoder: bool = True,
                  optimizer_type: str = "AdamW", sizes: ModelSizes | None = None,
                  fp8: str = "") -> MemoryEstimate:
    """Estimated VRAM of one training run (MiB); ValueError for an unknown family or bad sizes.

    ``sizes``: the chosen checkpoint's own sizes (`model_sizes.model_sizes`); without them, those
    of the released layout. Activation terms scale with the U-Net's and VAE's base widths.
    ``fp8``: "unet" (``fp8_base_unet``) or "all" (``fp8_base``: U-Net and text encoders) counts
    those weights at 1 byte each (float8_e4m3fn storage; the few norm, bias and embedding
    weights that stay 16-bit are counted at 1 byte too, under 1 % of them); only with mixed
    precision, which fp8 needs."""
    if fp8 not in FP8_CHOICES:
        raise ValueError(f"fp8 must be one of {FP8_CHOICES}, got {fp8!r}")
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
    sizes = sizes or released_sizes(family)
    if batch_size < 1 or network_dim < 1 or (conv_dim is not None and conv_dim < 1):
        raise ValueError("batch_size, network_dim and conv_dim must be at least 1")
    width, height = _size(resolution)
    half = mixed_precision in HALF_PRECISIONS
    images = batch_size * (width // 8) * (height // 8) / REFERENCE_LATENT_PIXELS
    unet_act = UNET_ACTIVATION_MB[family] * sizes.unet_width / RELEASED_UNET_WIDTH * images * \
        (1 if half else FULL_PRECISION_FACTOR)
    vae_act = VAE_ENCODE_MB * sizes.vae_width / RELEASED_VAE_WIDTH * images * (1 if half else 2)
    parts = {
        "base_weights": _weight_bytes(sizes, half, fp8) / MB,
        "lora_training": lora_parameters(family, network_dim, conv_dim, train_text_encoder, sizes)
        * (LORA_BYTES + OPTIMIZER_STATE_BYTES.get(optimizer_type, 8)) / MB,
        "unet_activations": unet_act * (CHECKPOINTING_FACTOR[family] if gradient_checkpointing else 1.0),
        "text_encoder_activations": _text_encoder_activations(family, sizes, batch_size, half)
        if train_text_encoder else 0.0,
        "vae_encoding": 0.0 if cache_latents else vae_act,
        "overhead": OVERHEAD_MB,
    }
    parts = {name: round(value, 1) for name, value in parts.items()}
    return MemoryEstimate(round(sum(parts.values()), 1), parts)


def _weight_bytes(sizes: ModelSizes, half: bool, fp8: str) -> int:
    if not half:
        return sizes.weights * 4
    unet = sizes.unet * (1 if fp8 in ("unet", "all") else 2)
    text = sum(sizes.text_encoders) * (1 if fp8 == "all" else 2)
    return unet + text + sizes.vae * 2


def fp8_choice(fp8_base: bool, fp8_base_unet: bool) -> str:
    """``estimate_vram``'s ``fp8`` for the two trainer options (fp8_base_unet narrows fp8_base)."""
    if fp8_base_unet:
        return "unet"
    return "all" if fp8_base else ""


def lora_parameters(family: str, network_dim: int, conv_dim: int | None, train_text_encoder: bool,
                    sizes: ModelSizes | None = None) -> int:
    """Number of trainable LoRA (LoCon with ``conv_dim``) parameters."""
    per_rank = sizes.lora_per_rank if sizes is not None else LORA_PARAMS_PER_RANK[family]
    count = network_dim * per_rank["unet"]
    if train_text_encoder:
        count += network_dim * per_rank["text_encoder"]
    if conv_dim is not None:
        count += network_dim * per_rank["locon_linear"] + conv_dim * per_rank["locon_conv"]
    return count


def _text_encoder_activations(family: str, sizes: ModelSizes, batch_size: int, half: bool) -> float:
    values = sum(TEXT_TOKENS * hidden * layers * TEXT_ENCODER_SAVED_PER_LAYER[family] for hidden, layers in
                 sizes.text_encoder_shapes)
    return batch_size * values * (2 if half else 4) / MB


def _size(resolution: Resolution) -> tuple[int, int]:
    if isinstance(resolution, (tuple, list)):
        width, height = (int(v) for v in resolution)
        return width, height
    return parse_resolution(str(resolution))
