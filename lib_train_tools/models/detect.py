"""Which model is in a checkpoint: the family (SD1.x, SD2.x, SDXL) and every width, from tensors alone.

Nothing here looks at the file name. The family is claimed by small detectors tried in order
(each returns an ``Architecture`` or ``None``); widths, depths, level counts and the context size
are read off tensor shapes. Head counts are the one thing weights cannot show: SD1 U-Nets use a
fixed 8 heads, SD2/SDXL U-Nets and every CLIP text encoder use 64-wide heads, as the released
models do.

Files that are not base models (a LoRA, a VAE, an embedding, a diffusers-folder part) are named as
such, and an unknown layout lists the tensors a base checkpoint would have and this one lacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .checkpoint_file import CheckpointError, TensorFile
from .clip import TextEncoderConfig
from .unet import UNetConfig
from .vae import VAEConfig

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
HEAD_WIDTH = 64
SD1_UNET_HEADS = 8
SD_VAE_SCALE = 0.18215
SDXL_VAE_SCALE = 0.13025

EXPECTED_KEYS = {
    "U-Net": (UNET_PREFIX + "input_blocks.0.0.weight", UNET_PREFIX + "out.2.weight"),
    "VAE": (VAE_PREFIX + "encoder.conv_in.weight", VAE_PREFIX + "decoder.conv_out.weight"),
    "text encoder": ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
                     "cond_stage_model.model.token_embedding.weight",
                     "conditioner.embedders.1.model.token_embedding.weight"),
}


@dataclass(frozen=True)
class TextEncoderSlot:
    """One text encoder as stored in the file: where, in which layout, and its config."""

    prefix: str          # key prefix in the file
    layout: str          # "hf" (CLIP-L, Hugging Face names) or "open_clip"
    config: TextEncoderConfig
    file_layers: int     # layers present in the file (SD2 stores 24, we use 23)


@dataclass(frozen=True)
class Architecture:
    family: str          # "sd1", "sd2" or "sdxl"
    unet: UNetConfig
    vae: VAEConfig
    text_encoders: tuple[TextEncoderSlot, ...]

    @property
    def display_name(self) -> str:
        return {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL"}[self.family]

    def describe(self) -> str:
        u = self.unet
        widths = "/".join(str(u.model_channels * m) for m in u.channel_mult)
        tes = ", ".join(f"{s.layout} {s.config.num_layers}x{s.config.hidden_size}" for s in self.text_encoders)
        return (f"{self.display_name}: U-Net {widths} ch, depth {list(u.transformer_depth)}, "
                f"context {u.context_dim}; VAE {self.vae.base_channels} ch; text {tes}")


class _MissingTensor(LookupError):
    """A tensor the claimed layout needs is not in the file (its key, or a pattern of keys)."""


class _Keys:
    """Key set and shape lookup of one file, with the layer-counting helpers detection needs."""

    def __init__(self, f: TensorFile):
        self.file = f
        self.keys = set(f.keys())

    def has(self, key: str) -> bool:
        return key in self.keys

    def shape(self, key: str, dims: int = 1) -> tuple[int, ...]:
        """The shape of ``key``, which must exist and have at least ``dims`` dimensions."""
        if key not in self.keys:
            raise _MissingTensor(key)
        shape = self.file.shape(key)
        if len(shape) < dims:
            raise ValueError(f"tensor '{key}' has shape {list(shape)}, expected at least {dims} dimensions")
        return shape

    def first(self, prefix: str, suffix: str) -> str:
        """The first key (sorted) under ``prefix`` ending with ``suffix``."""
        for key in sorted(self.keys):
            if key.startswith(prefix) and key.endswith(suffix):
                return key
        raise _MissingTensor(f"{prefix}*{suffix}")

    def indices(self, pattern: str) -> list[int]:
        """Sorted distinct integers captured by ``pattern`` (a regex with one group) over all keys."""
        rx = re.compile(pattern)
        found = {int(m.group(1)) for k in self.keys if (m := rx.match(k))}
        return sorted(found)

    def count(self, pattern: str) -> int:
        idx = self.indices(pattern)
        return idx[-1] + 1 if idx else 0


def detect_architecture(f: TensorFile) -> Architecture:
    """The architecture of a base-model checkpoint, or a ``CheckpointError`` saying why not."""
    k = _Keys(f)
    _reject_other_file_kinds(f.path, k)
    for claim in FAMILY_DETECTORS:
        try:
            arch = claim(k)
        except _MissingTensor as e:
            raise CheckpointError(f.path, f"unknown architecture: the file looks like {_family_of(claim)} but "
                                          f"lacks the tensor '{e.args[0]}' (an incomplete or damaged file?)") from e
        except (ValueError, ZeroDivisionError) as e:
            raise CheckpointError(f.path, f"unknown architecture: the file looks like {_family_of(claim)} but its "
                                          f"tensor shapes do not fit that layout ({e})") from e
        if arch is not None:
            return arch
    missing = [key for group in EXPECTED_KEYS.values() for key in group if not k.has(key)]
    raise CheckpointError(f.path, "unknown architecture: not an SD1.x, SD2.x or SDXL checkpoint; "
                                  f"missing expected tensors: {', '.join(missing)}")


def _reject_other_file_kinds(path: str, k: _Keys) -> None:
    keys = k.keys
    if any(key.startswith(("lora_unet_", "lora_te", "lycoris_")) or ".lora_down." in key
           or ".lora_A." in key for key in keys):
        raise CheckpointError(path, "this is a LoRA file, not a base model; choose a full checkpoint from "
                                    "models/Stable-diffusion (a LoRA can be used to continue training)")
    if any(key in keys for key in ("string_to_param", "emb_params", "clip_l", "clip_g")):
        raise CheckpointError(path, "this is a textual-inversion embedding, not a base model")
    if not any(key.startswith(UNET_PREFIX) for key in keys):
        if "encoder.conv_in.weight" in keys and "decoder.conv_in.weight" in keys \
                or any(key.startswith(VAE_PREFIX) for key in keys):
            raise CheckpointError(path, "this is a VAE file, not a base model; it has no U-Net or text encoder")
        if "conv_in.weight" in keys and any(key.startswith("down_blocks.") for key in keys):
            raise CheckpointError(path, "this is a diffusers-format U-Net, not a single-file checkpoint")


# ----------------------------------------------------------------------------- U-Net and VAE

def _unet_config(k: _Keys, family: str) -> UNetConfig:
    p = UNET_PREFIX
    mc, in_ch = k.shape(p + "input_blocks.0.0.weight", dims=2)[:2]
    out_ch = k.shape(p + "out.2.weight")[0]
    n_input = k.count(re.escape(p) + r"input_blocks\.(\d+)\.")
    levels = len(k.indices(re.escape(p) + r"input_blocks\.(\d+)\.0\.op\.weight")) + 1
    res_blocks = (n_input - levels) // levels
    mult, depth = [], []
    for level in range(levels):
        first = 1 + level * (res_blocks + 1)
        mult.append(k.shape(f"{p}input_blocks.{first}.0.out_layers.3.weight")[0] // mc)
        depth.append(k.count(re.escape(f"{p}input_blocks.{first}.1.") + r"transformer_blocks\.(\d+)\."))
    mid_depth = k.count(re.escape(p + "middle_block.1.") + r"transformer_blocks\.(\d+)\.")
    attn_key = k.first(p, "attn2.to_k.weight")
    proj_key = k.first(p, "proj_in.weight")
    adm_key = p + "label_emb.0.0.weight"
    return UNetConfig(
        in_channels=in_ch, out_channels=out_ch, model_channels=mc, channel_mult=tuple(mult),
        num_res_blocks=res_blocks, transformer_depth=tuple(depth), transformer_depth_middle=mid_depth,
        num_heads=SD1_UNET_HEADS, head_dim=-1 if family == "sd1" else HEAD_WIDTH,
        context_dim=k.shape(attn_key, dims=2)[1], use_linear_proj=len(k.shape(proj_key)) == 2,
        adm_in_channels=k.shape(adm_key, dims=2)[1] if k.has(adm_key) else 0,
        norm_groups=32,
    )


def _vae_config(k: _Keys, family: str) -> VAEConfig:
    p = VAE_PREFIX
    base, in_ch = k.shape(p + "encoder.conv_in.weight", dims=2)[:2]
    levels = k.count(re.escape(p) + r"encoder\.down\.(\d+)\.")
    mult = tuple(k.shape(f"{p}encoder.down.{i}.block.0.conv2.weight")[0] // base for i in range(levels))
    return VAEConfig(
        in_channels=in_ch, out_channels=k.shape(p + "decoder.conv_out.weight")[0],
        latent_channels=k.shape(p + "quant_conv.weight")[0] // 2, base_channels=base, channel_mult=mult,
        num_res_blocks=k.count(re.escape(p) + r"encoder\.down\.0\.block\.(\d+)\."), norm_groups=32,
        scaling_factor=SDXL_VAE_SCALE if family == "sdxl" else SD_VAE_SCALE,
    )


# ----------------------------------------------------------------------------- text encoders

def _hf_text_encoder(k: _Keys, prefix: str) -> TextEncoderSlot:
    layers = k.count(re.escape(prefix) + r"encoder\.layers\.(\d+)\.")
    vocab, hidden = k.shape(prefix + "embeddings.token_embedding.weight", dims=2)
    cfg = TextEncoderConfig(
        vocab_size=vocab, max_positions=k.shape(prefix + "embeddings.position_embedding.weight")[0],
        hidden_size=hidden, num_layers=layers, num_heads=max(1, hidden // HEAD_WIDTH),
        intermediate_size=k.shape(prefix + "encoder.layers.0.mlp.fc1.weight")[0], activation="quick_gelu",
    )
    return TextEncoderSlot(prefix=prefix, layout="hf", config=cfg, file_layers=layers)


def _open_clip_text_encoder(k: _Keys, prefix: str, keep_projection: bool, drop_last_layer: bool) -> TextEncoderSlot:
    layers = k.count(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    vocab, hidden = k.shape(prefix + "token_embedding.weight", dims=2)
    proj_key = prefix + "text_projection"
    cfg = TextEncoderConfig(
        vocab_size=vocab, max_positions=k.shape(prefix + "positional_embedding")[0], hidden_size=hidden,
        num_layers=layers - 1 if drop_last_layer else layers, num_heads=max(1, hidden // HEAD_WIDTH),
        intermediate_size=k.shape(prefix + "transformer.resblocks.0.mlp.c_fc.weight")[0], activation="gelu",
        projection_dim=k.shape(proj_key, dims=2)[1] if keep_projection and k.has(proj_key) else 0,
    )
    return TextEncoderSlot(prefix=prefix, layout="open_clip", config=cfg, file_layers=layers)


def _hf_prefix(k: _Keys, base: str) -> str | None:
    """CLIP-L keys live under ``<base>text_model.``, or directly under ``<base>`` in old SD1 files."""
    for prefix in (base + "text_model.", base):
        if k.has(prefix + "embeddings.token_embedding.weight"):
            return prefix
    return None


# ----------------------------------------------------------------------------- family detectors

def _has_unet_and_vae(k: _Keys) -> bool:
    return all(k.has(key) for key in EXPECTED_KEYS["U-Net"] + EXPECTED_KEYS["VAE"])


def _claim_sdxl(k: _Keys) -> Architecture | None:
    te2_prefix = "conditioner.embedders.1.model."
    te1_prefix = _hf_prefix(k, "conditioner.embedders.0.transformer.")
    if not (_has_unet_and_vae(k) and te1_prefix and k.has(te2_prefix + "token_embedding.weight")):
        return None
    te1 = _hf_text_encoder(k, te1_prefix)
    te2 = _open_clip_text_encoder(k, te2_prefix, keep_projection=True, drop_last_layer=False)
    return Architecture("sdxl", _unet_config(k, "sdxl"), _vae_config(k, "sdxl"), (te1, te2))


def _claim_sd2(k: _Keys) -> Architecture | None:
    prefix = "cond_stage_model.model."
    if not (_has_unet_and_vae(k) and k.has(prefix + "token_embedding.weight")):
        return None
    te = _open_clip_text_encoder(k, prefix, keep_projection=False, drop_last_layer=True)
    return Architecture("sd2", _unet_config(k, "sd2"), _vae_config(k, "sd2"), (te,))


def _claim_sd1(k: _Keys) -> Architecture | None:
    prefix = _hf_prefix(k, "cond_stage_model.transformer.")
    if not (_has_unet_and_vae(k) and prefix):
        return None
    te = _hf_text_encoder(k, prefix)
    return Architecture("sd1", _unet_config(k, "sd1"), _vae_config(k, "sd1"), (te,))


FAMILY_DETECTORS: tuple[Callable[[_Keys], Architecture | None], ...] = (_claim_sdxl, _claim_sd2, _claim_sd1)


def _family_of(claim: Callable[[_Keys], Architecture | None]) -> str:
    names: dict[Callable[[_Keys], Architecture | None], str] = {
        _claim_sdxl: "SDXL", _claim_sd2: "SD2.x", _claim_sd1: "SD1.x"}
    return names.get(claim, "a known family")

