"""The one table between checkpoint text-encoder layouts and ours (``clip.CLIPTextModel``).

Our names are the Hugging Face CLIP names, so SD1 / SDXL-TE1 state dicts need almost nothing;
OpenCLIP state dicts (SD2, SDXL-TE2) need renaming, the fused ``in_proj`` split into q/k/v, and
``text_projection`` transposed (open_clip multiplies ``x @ P``; a ``Linear`` weight is ``P.T``,
which is also what diffusers stores).

Keys in and out carry no checkpoint prefix (``cond_stage_model.transformer.``,
``cond_stage_model.model.``, ``conditioner.embedders.N.…``): the caller strips and adds those.
"""

from __future__ import annotations

import re

import torch

TEXT_MODEL = "text_model."
PROJECTION_KEY = "text_projection.weight"
_HF_ROOTS = ("embeddings.", "encoder.", "final_layer_norm.")

_OPEN_CLIP_TOP = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
}
_OPEN_CLIP_BLOCK = {
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}
_OPEN_CLIP_IN_PROJ = {"attn.in_proj_weight": "weight", "attn.in_proj_bias": "bias"}
# Not part of the text encoder we run: the CLIP loss temperature and a cached causal mask.
_OPEN_CLIP_IGNORED = ("logit_scale", "attn_mask")
_QKV = ("q", "k", "v")

_TOP_TO_OPEN_CLIP = {ours: theirs for theirs, ours in _OPEN_CLIP_TOP.items()}
_BLOCK_TO_OPEN_CLIP = {ours: theirs for theirs, ours in _OPEN_CLIP_BLOCK.items()}

_OPEN_CLIP_BLOCK_KEY = re.compile(r"transformer\.resblocks\.(\d+)\.(.+)")
_OUR_LAYER_KEY = re.compile(r"text_model\.encoder\.layers\.(\d+)\.(.+)")
_OUR_QKV_SUFFIX = re.compile(r"self_attn\.([qkv])_proj\.(weight|bias)")


class ClipLayoutError(ValueError):
    """A text-encoder state dict has a key or tensor this layout table cannot place."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"text encoder key '{key}': {reason}")


def from_hf_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF CLIP names (with or without the ``text_model.`` part that old SD1 files lack) -> ours."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.endswith("position_ids"):
            continue
        if key == PROJECTION_KEY:
            out[key] = value
            continue
        rest = key[len(TEXT_MODEL):] if key.startswith(TEXT_MODEL) else key
        if not rest.startswith(_HF_ROOTS):
            raise ClipLayoutError(key, "not a Hugging Face CLIP text-encoder parameter")
        out[TEXT_MODEL + rest] = value
    return out


def to_hf_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Ours -> HF CLIP names: the same names, so this only checks them and copies the dict."""
    for key in sd:
        if key != PROJECTION_KEY and not key.startswith(TEXT_MODEL):
            raise ClipLayoutError(key, "not a parameter of our text encoder")
    return dict(sd)


def from_open_clip_layout(sd: dict[str, torch.Tensor], num_layers: int | None = None) -> dict[str, torch.Tensor]:
    """OpenCLIP text-tower names -> ours; blocks at index >= ``num_layers`` are dropped (SD2: 24 -> 23)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key in _OPEN_CLIP_IGNORED:
            continue
        if key == "text_projection":
            out[PROJECTION_KEY] = value.t().contiguous()
        elif key in _OPEN_CLIP_TOP:
            out[_OPEN_CLIP_TOP[key]] = value
        else:
            match = _OPEN_CLIP_BLOCK_KEY.fullmatch(key)
            if match is None:
                raise ClipLayoutError(key, "not an OpenCLIP text-encoder parameter")
            index, suffix = int(match.group(1)), match.group(2)
            if num_layers is None or index < num_layers:
                out.update(_block_from_open_clip(key, f"{TEXT_MODEL}encoder.layers.{index}.", suffix, value))
    return out


def _block_from_open_clip(key: str, prefix: str, suffix: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    if suffix in _OPEN_CLIP_BLOCK:
        return {prefix + _OPEN_CLIP_BLOCK[suffix]: value}
    if suffix not in _OPEN_CLIP_IN_PROJ:
        raise ClipLayoutError(key, "not an OpenCLIP transformer-block parameter")
    if value.shape[0] % 3:
        raise ClipLayoutError(key, f"fused q/k/v projection of shape {tuple(value.shape)} does not split in 3")
    param = _OPEN_CLIP_IN_PROJ[suffix]
    parts = value.chunk(3, dim=0)
    return {f"{prefix}self_attn.{name}_proj.{param}": part.contiguous() for name, part in zip(_QKV, parts)}


def to_open_clip_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Ours -> OpenCLIP text-tower names, q/k/v fused into ``in_proj`` (no ``logit_scale``)."""
    out: dict[str, torch.Tensor] = {}
    pending: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if key == PROJECTION_KEY:
            out["text_projection"] = value.t().contiguous()
        elif key in _TOP_TO_OPEN_CLIP:
            out[_TOP_TO_OPEN_CLIP[key]] = value
        else:
            match = _OUR_LAYER_KEY.fullmatch(key)
            if match is None:
                raise ClipLayoutError(key, "not a parameter of our text encoder")
            index, suffix = int(match.group(1)), match.group(2)
            prefix = f"transformer.resblocks.{index}."
            if suffix in _BLOCK_TO_OPEN_CLIP:
                out[prefix + _BLOCK_TO_OPEN_CLIP[suffix]] = value
                continue
            qkv = _OUR_QKV_SUFFIX.fullmatch(suffix)
            if qkv is None:
                raise ClipLayoutError(key, "not a parameter of our text encoder layers")
            parts = pending.setdefault((index, qkv.group(2)), {})
            parts[qkv.group(1)] = value
            if len(parts) == len(_QKV):
                out[f"{prefix}attn.in_proj_{qkv.group(2)}"] = torch.cat([parts[name] for name in _QKV], dim=0)
    for (index, param), parts in pending.items():
        if len(parts) != len(_QKV):
            missing = ", ".join(f"{name}_proj" for name in _QKV if name not in parts)
            raise ClipLayoutError(f"text_model.encoder.layers.{index}.self_attn", f"{param} missing for {missing}")
    return out
