"""Model builders shared by the network tests: tiny CPU models and real-size models on the meta device."""
from __future__ import annotations

import torch
from torch import nn

from lib_train_tools.models.checkpoint_factory import recipe
from lib_train_tools.models.clip import CLIPTextModel
from lib_train_tools.models.unet import UNetModel
from lib_train_tools.network import LoRANetwork


def build_models(family: str, size: str = "tiny", seed: int = 0) -> tuple[UNetModel, list[CLIPTextModel]]:
    """U-Net and text encoders of ``family``; tiny ones are random on the CPU, real ones on meta."""
    r = recipe(family, size)
    if size == "real":
        with torch.device("meta"):
            return UNetModel(r.unet), [CLIPTextModel(p.config) for p in r.text_encoders]
    torch.manual_seed(seed)
    unet = UNetModel(r.unet).eval().requires_grad_(False)
    return unet, [CLIPTextModel(p.config).eval().requires_grad_(False) for p in r.text_encoders]


@torch.no_grad()
def randomize(network: LoRANetwork, seed: int, scale: float = 0.05) -> LoRANetwork:
    """Non-zero lora_up (and fresh lora_down) so every adapter changes its layer."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in network.named_parameters():
        param.copy_(scale * torch.randn(param.shape, generator=gen))
    return network


def unet_inputs(unet: UNetModel, seed: int = 1) -> tuple:
    """A small fixed batch for a U-Net: latents 8x8, one timestep, 5 context tokens (and y for SDXL)."""
    gen = torch.Generator().manual_seed(seed)
    cfg = unet.config
    x = torch.randn(1, cfg.in_channels, 8, 8, generator=gen)
    context = torch.randn(1, 5, cfg.context_dim, generator=gen)
    y = torch.randn(1, cfg.adm_in_channels, generator=gen) if cfg.adm_in_channels else None
    return x, torch.tensor([500]), context, y


def token_ids(seed: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 49406, (1, 7), generator=gen)
    ids[0, 0], ids[0, -1] = 49406, 49407
    return ids


def layer_paths(root: nn.Module) -> dict[int, str]:
    """id(layer) -> its path in ``root``."""
    return {id(m): p for p, m in root.named_modules()}
