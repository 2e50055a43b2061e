"""A rough estimate of the accelerator memory (VRAM) a LoRA training run needs, for the UI.

This is an estimate, not a measurement: it was NOT measured on a GPU here (the project's test
machines have none). It adds up

* ``base_weights``: the frozen U-Net, text encoder(s) and VAE at the working precision (2 bytes
  per parameter with fp16/bf16 mixed precision, 4 without). Parameter counts are the chosen
  checkpoint's own when its sizes are given (`model_sizes.py` counts them from the header), else
  those of the released SD1.5 / SD2.1 / SDXL configs (a test recounts them);
* ``lora_training``: the LoRA weights, their gradients (4 + 4 bytes each, always float32) and the
  optimizer state (AdamW: 8 bytes; see `OPTIMIZER_STATE_BYTES`);
* ``unet_activations``: what the U-Net keeps for the backward pass, proportional to batch size x
  latent pixels (attention through PyTorch SDPA does not store the attention matrix, so this is
  linear in pixels); `UNET_ACTIVATION_MB` per 512x512 image at half precision is a calibrated
  factor, doubled without mixed precision and multiplied by `CHECKPOINTING_FACTOR` with gradient
  checkpointing;
* ``text_encoder_activations``: the same for a trained text encoder (77 tokens, small);
* ``vae_encoding``: without cache_latents, the VAE encoder runs every step (no gradients, but its
  full-resolution feature maps stay in the allocator's cache);
* ``overhead``: the CUDA context and allocator slack that tools such as nvidia-smi include.

Calibration, against published figures rather than our own measurements: kohya's sd-scripts
training an SD1.5 LoRA at 512 px, batch 1, fp16, without gradient checkpointing, is commonly
reported at roughly 6 GB (this gives 5.8 GiB at rank 32); an SDXL LoRA at 1024 px, batch 1, bf16,
with gradient checkpointing, U-Net only, at roughly 10-12 GB (this gives 10.7 GiB at rank 32).
Expect real use to differ by +-30 %: kernels, allocator and drivers vary.
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

# Calibrated factors (see the module docstring): U-Net activation MB per 512x512 image (a 64x64
# latent) at half precision without checkpointing; the share left with checkpointing.
UNET_ACTIVATION_MB = {"sd1": 3000.0, "sd2": 3000.0, "sdxl": 4000.0}
CHECKPOINTING_FACTOR = 0.15
REFERENCE_LATENT_PIXELS = 64 * 64
# Tensors of hidden-size width a transformer layer keeps for its backward pass (rough).
TEXT_ENCODER_SAVED_PER_LAYER = 16
# VAE encoder feature maps held per 512x512 image at half precision (no gradients).
VAE_ENCODE_MB = 256.0
OVERHEAD_MB = 600.0
LORA_BYTES = 4 + 4  # float32 weight and gradient
OPTIMIZER_STATE_BYTES = {"AdamW": 8, "AdamW8bit": 2, "Lion": 4, "Lion8bit": 1, "SGDNesterov": 4, "Prodigy": 16,
                         "Adafactor": 1}
HALF_PRECISIONS = ("fp16", "bf16")

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
                  optimizer_type: str = "AdamW", sizes: ModelSizes | None = None) -> MemoryEstimate:
    """Estimated VRAM of one training run (MiB); ValueError for an unknown family or bad sizes.

    ``sizes``: the chosen checkpoint's own sizes (`model_sizes.model_sizes`); without them, those
    of the released layout. Activation terms scale with the U-Net's and VAE's base widths."""
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
    sizes = sizes or released_sizes(family)
    if batch_size < 1 or network_dim < 1 or (conv_dim is not None and conv_dim < 1):
        raise ValueError("batch_size, network_dim and conv_dim must be at least 1")
    width, height = _size(resolution)
    half = mixed_precision in HALF_PRECISIONS
    images = batch_size * (width // 8) * (height // 8) / REFERENCE_LATENT_PIXELS
    unet_act = UNET_ACTIVATION_MB[family] * sizes.unet_width / RELEASED_UNET_WIDTH * images * (1 if half else 2)
    vae_act = VAE_ENCODE_MB * sizes.vae_width / RELEASED_VAE_WIDTH * images * (1 if half else 2)
    parts = {
        "base_weights": sizes.weights * (2 if half else 4) / MB,
        "lora_training": lora_parameters(family, network_dim, conv_dim, train_text_encoder, sizes)
        * (LORA_BYTES + OPTIMIZER_STATE_BYTES.get(optimizer_type, 8)) / MB,
        "unet_activations": unet_act * (CHECKPOINTING_FACTOR if gradient_checkpointing else 1.0),
        "text_encoder_activations": _text_encoder_activations(sizes, batch_size, half) if train_text_encoder else 0.0,
        "vae_encoding": 0.0 if cache_latents else vae_act,
        "overhead": OVERHEAD_MB,
    }
    parts = {name: round(value, 1) for name, value in parts.items()}
    return MemoryEstimate(round(sum(parts.values()), 1), parts)


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


def _text_encoder_activations(sizes: ModelSizes, batch_size: int, half: bool) -> float:
    values = sum(TEXT_TOKENS * hidden * layers * TEXT_ENCODER_SAVED_PER_LAYER for hidden, layers in
                 sizes.text_encoder_shapes)
    return batch_size * values * (2 if half else 4) / MB


def _size(resolution: Resolution) -> tuple[int, int]:
    if isinstance(resolution, (tuple, list)):
        width, height = (int(v) for v in resolution)
        return width, height
    return parse_resolution(str(resolution))
