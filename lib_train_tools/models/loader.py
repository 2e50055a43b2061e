"""Loading a single-file SD1.x / SD2.x / SDXL checkpoint into our U-Net, VAE and text encoders.

The architecture comes from ``detect.py`` (tensor shapes only). Each part is built on the meta
device (no memory, no random init) and then takes the file's tensors directly
(``load_state_dict(assign=True)``), each read once and cast to the working dtype on the way, so
peak memory is about one copy of the weights. Keys outside the three parts (EMA copies, DDPM
buffers, ``logit_scale``...) are counted and ignored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import nn

from . import clip_layout
from .checkpoint_file import CheckpointError, TensorFile
from .clip import CLIPTextModel
from .detect import UNET_PREFIX, VAE_PREFIX, Architecture, TextEncoderSlot, detect_architecture
from .prediction import PredictionType, decide_prediction
from .unet import UNetModel
from .vae import AutoencoderKL

PARTS = ("unet", "vae", "text_encoders")

_Part = TypeVar("_Part", bound=nn.Module)


@dataclass
class StableDiffusionModels:
    """The loaded parts of one checkpoint and what we decided about it."""

    path: str
    architecture: Architecture
    unet: UNetModel | None
    vae: AutoencoderKL | None
    text_encoders: list[CLIPTextModel]
    prediction: PredictionType
    ignored_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def family(self) -> str:
        return self.architecture.family

    @property
    def v_prediction(self) -> bool:
        return self.prediction.v_prediction

    @property
    def zero_terminal_snr(self) -> bool:
        return self.prediction.zero_terminal_snr


def load_checkpoint(path: str | os.PathLike, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                    v_prediction: bool | None = None, parts: tuple[str, ...] = PARTS,
                    zero_terminal_snr: bool | None = None) -> StableDiffusionModels:
    """Load ``parts`` of the checkpoint at ``path``; ``v_prediction`` and ``zero_terminal_snr``
    override the detection (``prediction.decide_prediction``) when not None."""
    start = time.perf_counter()
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    with TensorFile(path) as f:
        arch = detect_architecture(f)
        unet = _load_unet(f, arch, dtype, device) if "unet" in parts else None
        vae = _load_vae(f, arch, dtype, device) if "vae" in parts else None
        tes = [_load_text_encoder(f, slot, dtype, device) for slot in arch.text_encoders] \
            if "text_encoders" in parts else []
        keys = set(f.keys())
        prediction = decide_prediction(arch.family, unet, keys, v_prediction, zero_terminal_snr)
    used_prefixes = (UNET_PREFIX, VAE_PREFIX) + tuple(s.prefix for s in arch.text_encoders)
    ignored = sorted(k for k in keys if not k.startswith(used_prefixes))
    return StableDiffusionModels(str(path), arch, unet, vae, tes, prediction, ignored, time.perf_counter() - start)


def load_architecture(path: str | os.PathLike) -> Architecture:
    """Only the architecture (reads the header of a .safetensors file, no weights)."""
    with TensorFile(path) as f:
        return detect_architecture(f)


def _load_unet(f: TensorFile, arch: Architecture, dtype: torch.dtype, device) -> UNetModel:
    state = f.tensors(UNET_PREFIX, dtype, device)
    return _assemble(f.path, "U-Net", lambda: UNetModel(arch.unet), state)


def _load_vae(f: TensorFile, arch: Architecture, dtype: torch.dtype, device) -> AutoencoderKL:
    state = f.tensors(VAE_PREFIX, dtype, device)
    return _assemble(f.path, "VAE", lambda: AutoencoderKL(arch.vae), state)


def _load_text_encoder(f: TensorFile, slot: TextEncoderSlot, dtype: torch.dtype, device) -> CLIPTextModel:
    state = f.tensors(slot.prefix, dtype, device, skip=("position_ids",))
    if slot.layout == "open_clip":
        state = clip_layout.from_open_clip_layout(state, num_layers=slot.config.num_layers)
        if not slot.config.projection_dim:
            state.pop("text_projection.weight", None)
    else:
        state = clip_layout.from_hf_layout(state)
    return _assemble(f.path, "text encoder", lambda: CLIPTextModel(slot.config), state)


def _assemble(path: str, part: str, build: Callable[[], _Part], state: dict[str, torch.Tensor]) -> _Part:
    """Build ``part`` on the meta device and give it the file's tensors without copying them."""
    with torch.device("meta"):
        module = build()
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(path, f"the {part} tensors do not match the detected layout: "
                                    f"missing {_few(missing)}, unexpected {_few(unexpected)}, shape {_few(wrong)}")
    module.load_state_dict(state, strict=True, assign=True)
    leftover = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
    if leftover:
        raise RuntimeError(f"{part}: tensors left without data after loading: {_few(leftover)}")
    return module.eval().requires_grad_(False)


def _few(items: list[str], n: int = 5) -> str:
    if not items:
        return "none"
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return "[" + ", ".join(items[:n]) + "]" + more
