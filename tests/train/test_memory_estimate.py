"""The quick VRAM estimate: its constants recounted from our model classes and re-traced, its parts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from lib_train_tools import torch_compat
from lib_train_tools.models.clip import CLIP_L, OPENCLIP_BIGG, OPENCLIP_H_SD2, TINY_CLIP_L, CLIPTextModel
from lib_train_tools.models.unet import SD1_UNET, SD2_UNET, SDXL_UNET, TINY_SD1_UNET, UNetModel
from lib_train_tools.models.vae import SD_VAE, SDXL_VAE, AutoencoderKL
from lib_train_tools.network.network import create_network
from lib_train_tools.network.targets import text_encoder_targets, unet_targets
from lib_train_tools.train.memory_estimate import (
    CHECKPOINTING_FACTOR,
    FULL_PRECISION_FACTOR,
    LORA_PARAMS_PER_RANK,
    OPTIMIZER_STATE_BYTES,
    PARAMETER_COUNTS,
    TEXT_ENCODER_SAVED_PER_LAYER,
    TEXT_ENCODER_SHAPES,
    UNET_ACTIVATION_MB,
    estimate_vram,
    lora_parameters,
)
from lib_train_tools.train.memory_trace import MB
from lib_train_tools.train.params import OPTIMIZER_NAMES
from lib_train_tools.train.traced_estimate import TraceSettings, released_architecture, traced_vram

CONFIGS = {"sd1": (SD1_UNET, (CLIP_L,), SD_VAE), "sd2": (SD2_UNET, (OPENCLIP_H_SD2,), SD_VAE),
           "sdxl": (SDXL_UNET, (CLIP_L, OPENCLIP_BIGG), SDXL_VAE)}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def per_rank(unet: UNetModel, text_encoders, family: str) -> dict[str, int]:
    """LoRA parameters per unit of rank, by kind, from kohya's module set."""
    out = {"unet": 0, "text_encoder": 0, "locon_linear": 0, "locon_conv": 0}
    for target in unet_targets(unet, family, include_locon=True):
        m = target.module
        if target.spatial_kernel:
            out["locon_conv"] += m.in_channels * m.kernel_size[0] * m.kernel_size[1] + m.out_channels
            continue
        size = m.in_features + m.out_features if isinstance(m, nn.Linear) else m.in_channels + m.out_channels
        out["locon_linear" if target.locon else "unet"] += size
    for encoder in text_encoders:
        out["text_encoder"] += sum(t.module.in_features + t.module.out_features
                                   for t in text_encoder_targets(encoder, "lora_te"))
    return out


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_constants_match_the_model_classes(family):
    unet_cfg, te_cfgs, vae_cfg = CONFIGS[family]
    with torch.device("meta"):
        unet, encoders, vae = UNetModel(unet_cfg), [CLIPTextModel(c) for c in te_cfgs], AutoencoderKL(vae_cfg)
    assert PARAMETER_COUNTS[family] == {"unet": count(unet), "text_encoders": tuple(count(e) for e in encoders),
                                        "vae": count(vae)}
    assert LORA_PARAMS_PER_RANK[family] == per_rank(unet, encoders, family)
    assert TEXT_ENCODER_SHAPES[family] == tuple((c.hidden_size, c.num_layers) for c in te_cfgs)


@pytest.mark.parametrize("conv_dim,train_te", [(None, True), (3, True), (None, False), (2, False)])
def test_lora_parameter_rule_matches_a_real_network(conv_dim, train_te):
    """The per-rank counting (done here on a tiny model) gives the size of the network we build."""
    unet, encoder = UNetModel(TINY_SD1_UNET), CLIPTextModel(TINY_CLIP_L)
    ranks = per_rank(unet, [encoder], "sd1")
    network = create_network(unet, [encoder], "sd1", network_dim=5, network_alpha=1.0, conv_dim=conv_dim,
                             train_text_encoder=train_te)
    expected = 5 * ranks["unet"] + (5 * ranks["text_encoder"] if train_te else 0)
    if conv_dim:
        expected += 5 * ranks["locon_linear"] + conv_dim * ranks["locon_conv"]
    assert count(network) == expected
    assert lora_parameters("sd1", 32, None, True) == 32 * (423_936 + 165_888)


TRACEABLE = pytest.mark.skipif(not torch_compat.storage_lifetimes_traceable(),
                               reason="this torch cannot be traced (torch_compat.storage_lifetimes_traceable)")


@TRACEABLE
@pytest.mark.parametrize("family, side, precision", [("sd1", 512, "fp16"), ("sdxl", 1024, "bf16")])
def test_the_activation_factors_are_the_traced_ones(family, side, precision):
    """UNET_ACTIVATION_MB, CHECKPOINTING_FACTOR and the text-encoder factor, re-traced on the released layouts."""
    arch = released_architecture(family)
    unet_only = TraceSettings(resolution=(side, side), network_dim=32, mixed_precision=precision,
                              train_text_encoder=False)
    full = traced_vram(arch, unet_only).traced_bytes / MB
    checkpointed = traced_vram(arch, replace(unet_only, gradient_checkpointing=True))
    with_te = traced_vram(arch, replace(unet_only, train_text_encoder=True)).traced_bytes / MB
    images = (side / 512) ** 2  # 512x512 images
    assert UNET_ACTIVATION_MB[family] == pytest.approx(full / images, rel=0.02)
    gradients = checkpointed.parts["lora"]  # float32 LoRA gradients, which lora_training counts
    assert CHECKPOINTING_FACTOR[family] == pytest.approx((checkpointed.traced_bytes / MB - gradients) / full, abs=0.01)
    te_values = sum(77 * hidden * layers for hidden, layers in TEXT_ENCODER_SHAPES[family]) * 2 / MB
    assert TEXT_ENCODER_SAVED_PER_LAYER[family] == pytest.approx((with_te - full) / te_values, rel=0.05)


@TRACEABLE
def test_the_full_precision_factor_is_the_traced_one():
    arch = released_architecture("sd1")
    half = TraceSettings(resolution=(512, 512), network_dim=32, mixed_precision="fp16", train_text_encoder=False)
    ratio = traced_vram(arch, replace(half, mixed_precision="no")).traced_bytes / traced_vram(arch, half).traced_bytes
    assert FULL_PRECISION_FACTOR == pytest.approx(ratio, abs=0.02)


@TRACEABLE
def test_the_formula_agrees_with_the_traced_step_at_the_reference_points():
    """SD1.5 512 px, batch 1, rank 32, fp16, text encoder trained; SDXL 1024 px, bf16, checkpointing,
    U-Net only: the quick figure within 5 % of the traced one (both with the VAE loaded)."""
    sd15 = estimate_vram("sd1", 512, 1, 32, None, "fp16", False, True, True)
    traced_sd15 = traced_vram(released_architecture("sd1"), TraceSettings(network_dim=32, mixed_precision="fp16"))
    assert sd15.total_mb == pytest.approx(traced_sd15.total_mb, rel=0.05)
    sdxl = estimate_vram("sdxl", 1024, 1, 32, None, "bf16", True, True, False)
    traced_sdxl = traced_vram(released_architecture("sdxl"), TraceSettings(
        resolution=(1024, 1024), network_dim=32, mixed_precision="bf16", gradient_checkpointing=True,
        train_text_encoder=False))
    assert sdxl.total_mb == pytest.approx(traced_sdxl.total_mb, rel=0.05)
    assert 3.5 <= sd15.total_gb <= 4.5 and 8.5 <= sdxl.total_gb <= 9.5


def test_parts_add_up_and_respond_to_the_settings():
    base = estimate_vram("sd1", 512)
    assert base.total_mb == pytest.approx(sum(base.parts.values()), abs=0.5)
    assert base.parts["base_weights"] == pytest.approx((859_520_964 + 123_060_480 + 83_653_863) * 2 / 2**20, abs=0.1)
    assert base.parts["vae_encoding"] == 0.0
    assert estimate_vram("sd1", 512, gradient_checkpointing=True).total_mb < base.total_mb
    assert estimate_vram("sd1", 512, batch_size=4).parts["unet_activations"] == 4 * base.parts["unet_activations"]
    assert estimate_vram("sd1", 1024).parts["unet_activations"] == 4 * base.parts["unet_activations"]
    assert estimate_vram("sd1", "512,768").parts["unet_activations"] == 1.5 * base.parts["unet_activations"]
    assert estimate_vram("sd1", 512, mixed_precision="no").parts["base_weights"] == 2 * base.parts["base_weights"]
    assert estimate_vram("sd1", 512, conv_dim=8).parts["lora_training"] > base.parts["lora_training"]
    assert estimate_vram("sd1", 512, cache_latents=False).parts["vae_encoding"] > 0
    assert estimate_vram("sd1", 512, train_text_encoder=False).parts["text_encoder_activations"] == 0
    assert estimate_vram("sd1", 512, optimizer_type="AdamW8bit").parts["lora_training"] < base.parts["lora_training"]


def test_every_optimizer_has_a_state_size():
    assert set(OPTIMIZER_STATE_BYTES) == set(OPTIMIZER_NAMES)


def test_bad_input():
    with pytest.raises(ValueError, match="family"):
        estimate_vram("sd3", 512)
    with pytest.raises(ValueError, match="resolution"):
        estimate_vram("sd1", "513")
    with pytest.raises(ValueError, match="at least 1"):
        estimate_vram("sd1", 512, batch_size=0)
