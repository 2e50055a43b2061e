"""The sizes of one checkpoint's models, counted without loading a weight: what the memory estimate needs.

`model_sizes(arch)` builds our U-Net, text encoders and VAE for the detected architecture on the
meta device (no memory, no file reads beyond the header that gave ``arch``) and counts

* the parameters of each part (the frozen weights the run keeps on the card);
* the LoRA parameters per unit of rank, from the very layers the network would target
  (``network/targets.py``): ``in + out`` features for a linear or 1x1 layer, ``in*k*k + out`` for a
  kxk convolution, split as the estimate needs them (U-Net, text encoders, LoCon linears, LoCon
  convolutions);
* the widths that activation memory grows with (the U-Net's and the VAE's base channels, each
  text encoder's hidden size and layer count).

`released_sizes(family)` gives the same record for the released SD1.5 / SD2.1 / SDXL layouts, used
when the base model's file cannot be read yet.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from ..models.clip import CLIPTextModel
from ..models.detect import Architecture
from ..models.unet import UNetModel
from ..models.vae import AutoencoderKL
from ..network.targets import LoRATarget, text_encoder_targets, unet_targets

# The released layouts' base widths: the U-Net's model_channels, the VAE's base channels.
RELEASED_UNET_WIDTH = 320
RELEASED_VAE_WIDTH = 128


@dataclass(frozen=True)
class ModelSizes:
    family: str
    unet: int                                    # parameters
    text_encoders: tuple[int, ...]
    vae: int
    lora_per_rank: dict[str, int]                # unet, text_encoder, locon_linear, locon_conv
    unet_width: int                              # model_channels
    vae_width: int                               # base channels
    text_encoder_shapes: tuple[tuple[int, int], ...]  # (hidden size, layers) of each
    source: str                                  # where the numbers come from, for the UI

    @property
    def weights(self) -> int:
        return self.unet + sum(self.text_encoders) + self.vae


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _rank_cost(target: LoRATarget) -> int:
    """LoRA parameters per unit of rank on ``target``: down (in x k x k) plus up (out)."""
    module = target.module
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1] if target.spatial_kernel else 1
        return module.in_channels * k + module.out_channels
    assert isinstance(module, nn.Linear)
    return module.in_features + module.out_features


@functools.lru_cache(maxsize=16)
def model_sizes(arch: Architecture, source: str = "the checkpoint's header") -> ModelSizes:
    """Sizes of the models of ``arch`` (cached: the settings check asks on every change)."""
    with torch.device("meta"):
        unet = UNetModel(arch.unet)
        text_encoders = [CLIPTextModel(slot.config) for slot in arch.text_encoders]
        vae = AutoencoderKL(arch.vae)
    targets = unet_targets(unet, arch.family, include_locon=True)
    prefixes = ("lora_te",) if len(text_encoders) == 1 else ("lora_te1", "lora_te2")
    te_targets = [t for te, prefix in zip(text_encoders, prefixes) for t in text_encoder_targets(te, prefix)]
    per_rank = {
        "unet": sum(_rank_cost(t) for t in targets if not t.locon),
        "text_encoder": sum(_rank_cost(t) for t in te_targets),
        "locon_linear": sum(_rank_cost(t) for t in targets if t.locon and not t.spatial_kernel),
        "locon_conv": sum(_rank_cost(t) for t in targets if t.locon and t.spatial_kernel),
    }
    return ModelSizes(
        family=arch.family, unet=_count(unet), text_encoders=tuple(_count(te) for te in text_encoders),
        vae=_count(vae), lora_per_rank=per_rank, unet_width=arch.unet.model_channels,
        vae_width=arch.vae.base_channels,
        text_encoder_shapes=tuple((s.config.hidden_size, s.config.num_layers) for s in arch.text_encoders),
        source=source,
    )


def released_sizes(family: str) -> ModelSizes:
    """The record for the released layout of ``family`` (from `memory_estimate`'s tables)."""
    from .memory_estimate import LORA_PARAMS_PER_RANK, PARAMETER_COUNTS, TEXT_ENCODER_SHAPES

    counts = PARAMETER_COUNTS[family]
    return ModelSizes(
        family=family, unet=counts["unet"], text_encoders=tuple(counts["text_encoders"]), vae=counts["vae"],
        lora_per_rank=dict(LORA_PARAMS_PER_RANK[family]), unet_width=RELEASED_UNET_WIDTH,
        vae_width=RELEASED_VAE_WIDTH, text_encoder_shapes=tuple(TEXT_ENCODER_SHAPES[family]),
        source=f"the released {family.upper()} layout",
    )
