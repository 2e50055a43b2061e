"""Random-weight single-file checkpoints in the exact released key layout, for tests, the demo and benchmarks.

``tiny`` recipes keep every key of the real SD1.5 / SD2.1 / SDXL files (same block structure, same
layer counts) with small widths, so a file is a few MB and loads in a fraction of a second on a
CPU. ``real`` recipes have the released widths (multi-GB files, for benchmarks only).

The files are written as the originals are: U-Net under ``model.diffusion_model.``, VAE under
``first_stage_model.``, CLIP-L in Hugging Face names (SD1 with its int64 ``position_ids``), the
OpenCLIP encoders in open_clip names (SD2 with all 24 layers, SDXL's with ``logit_scale``).
Family ``sd2-v`` is SD2 whose output bias is shifted so the WebUI's test denoise reports
v-prediction, as it does for real 768-v models; ``sd2`` is shifted the other way. ``markers``
adds the empty top-level ``v_pred`` / ``ztsnr`` tensors that v-prediction, zero-terminal-SNR
finetunes such as NoobAI-XL v-pred carry (``VPRED_ZTSNR`` gives both).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..atomic import atomic_path
from . import clip_layout
from .clip import CLIP_L, OPENCLIP_BIGG, OPENCLIP_H_SD2, TINY_CLIP_L, TINY_OPENCLIP_BIGG, TINY_OPENCLIP_H, \
    CLIPTextModel, TextEncoderConfig
from .detect import UNET_PREFIX, VAE_PREFIX
from .prediction import MARKER_KEYS, V_THRESHOLD, test_denoise_score
from .unet import SD1_UNET, SD2_UNET, SDXL_UNET, TINY_SD1_UNET, TINY_SD2_UNET, TINY_SDXL_UNET, UNetConfig, UNetModel
from .vae import SD_VAE, SDXL_VAE, TINY_SDXL_VAE, TINY_VAE, AutoencoderKL, VAEConfig

FAMILIES = ("sd1", "sd2", "sd2-v", "sdxl")
SIZES = ("tiny", "real")
# Target test-denoise scores: well below the v threshold for v models, well above it otherwise.
V_SCORE, EPS_SCORE = V_THRESHOLD - 1.0, V_THRESHOLD + 1.0
VPRED_ZTSNR = MARKER_KEYS  # the markers of a v-prediction model trained with zero terminal SNR


@dataclass(frozen=True)
class TextEncoderPlacement:
    prefix: str
    layout: str            # "hf" or "open_clip"
    config: TextEncoderConfig
    extra_file_layers: int = 0


@dataclass(frozen=True)
class CheckpointRecipe:
    family: str
    unet: UNetConfig
    vae: VAEConfig
    text_encoders: tuple[TextEncoderPlacement, ...]


def recipe(family: str, size: str = "tiny") -> CheckpointRecipe:
    """The model configs and file placement for one family and size."""
    if family not in FAMILIES or size not in SIZES:
        raise ValueError(f"unknown checkpoint recipe {family!r}/{size!r}; families {FAMILIES}, sizes {SIZES}")
    tiny = size == "tiny"
    base = family.removesuffix("-v")
    if base == "sd1":
        te = TextEncoderPlacement("cond_stage_model.transformer.text_model.", "hf", TINY_CLIP_L if tiny else CLIP_L)
        return CheckpointRecipe(family, TINY_SD1_UNET if tiny else SD1_UNET, TINY_VAE if tiny else SD_VAE, (te,))
    if base == "sd2":
        te = TextEncoderPlacement("cond_stage_model.model.", "open_clip", TINY_OPENCLIP_H if tiny else OPENCLIP_H_SD2,
                                  extra_file_layers=1)
        return CheckpointRecipe(family, TINY_SD2_UNET if tiny else SD2_UNET, TINY_VAE if tiny else SD_VAE, (te,))
    te1 = TextEncoderPlacement("conditioner.embedders.0.transformer.text_model.", "hf", TINY_CLIP_L if tiny else CLIP_L)
    te2 = TextEncoderPlacement("conditioner.embedders.1.model.", "open_clip",
                               TINY_OPENCLIP_BIGG if tiny else OPENCLIP_BIGG)
    return CheckpointRecipe(family, TINY_SDXL_UNET if tiny else SDXL_UNET, TINY_SDXL_VAE if tiny else SDXL_VAE,
                            (te1, te2))


def build_state_dict(family: str, size: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float16,
                     markers: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """All tensors of a random checkpoint, keyed exactly as in the released single files, plus an
    empty float tensor for each of ``markers`` (``v_pred``, ``ztsnr``)."""
    unknown = set(markers) - set(MARKER_KEYS)
    if unknown:
        raise ValueError(f"unknown checkpoint markers {sorted(unknown)}; choose from {MARKER_KEYS}")
    r = recipe(family, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNetModel(r.unet)
        _set_prediction_kind(unet, v=family.endswith("-v"), check=family.startswith("sd2"))
        out = {UNET_PREFIX + k: v for k, v in unet.state_dict().items()}
        del unet
        out.update({VAE_PREFIX + k: v for k, v in AutoencoderKL(r.vae).state_dict().items()})
        for placement in r.text_encoders:
            out.update(_text_encoder_tensors(placement))
        out.update({marker: torch.zeros(0) for marker in markers})
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in out.items()}


def write_checkpoint(path: str | os.PathLike, family: str = "sd1", size: str = "tiny", seed: int = 0,
                     dtype: torch.dtype = torch.float16, markers: tuple[str, ...] = ()) -> Path:
    """Write a random checkpoint as ``.safetensors`` or ``.ckpt`` (by suffix), atomically."""
    path = Path(path)
    state = build_state_dict(family, size, seed, dtype, markers)
    if path.suffix not in (".safetensors", ".ckpt"):
        raise ValueError(f"{path.name}: choose a .safetensors or .ckpt file name")
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file
            save_file(state, str(tmp), metadata={"format": "pt"})
        else:
            torch.save({"state_dict": state}, tmp)
    return path


def _text_encoder_tensors(p: TextEncoderPlacement) -> dict[str, torch.Tensor]:
    cfg = replace(p.config, num_layers=p.config.num_layers + p.extra_file_layers)
    if p.layout == "open_clip" and not cfg.projection_dim:
        cfg = replace(cfg, projection_dim=cfg.hidden_size)   # SD2 files carry an (unused) projection
    state = CLIPTextModel(cfg).state_dict()
    if p.layout == "hf":
        state["text_model.embeddings.position_ids"] = torch.arange(cfg.max_positions, dtype=torch.int64)[None]
        return {p.prefix + k.removeprefix("text_model."): v for k, v in state.items()}
    state = clip_layout.to_open_clip_layout(state)
    state["logit_scale"] = torch.tensor(4.6052)
    return {p.prefix + k: v for k, v in state.items()}


@torch.no_grad()
def _set_prediction_kind(unet: UNetModel, v: bool, check: bool) -> None:
    """Shift the output bias so the test denoise reads as v (or clearly not), like real SD2 models."""
    if not check or next(unet.parameters()).is_meta:
        return
    score = test_denoise_score(unet)
    out_conv = unet.out[2]
    assert isinstance(out_conv, torch.nn.Conv2d) and out_conv.bias is not None
    out_conv.bias += (V_SCORE if v else EPS_SCORE) - score
