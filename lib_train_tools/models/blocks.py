"""Building blocks of the Stable Diffusion U-Net, named exactly like the LDM/SGM checkpoint modules.

Every attribute name and ``nn.Sequential`` index below is part of the checkpoint key layout
(``in_layers.2``, ``emb_layers.1``, ``to_out.0``, ``ff.net.2`` ...), so a released file loads with
a prefix strip and a strict ``load_state_dict``. Attention goes through one function, ``attention``,
so the kernel choice lives in a single place.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# LDM's epsilon for the GroupNorm in front of each spatial transformer; the ResBlock and output
# norms keep torch's 1e-5 default.
TRANSFORMER_NORM_EPS = 1e-6
RESBLOCK_NORM_EPS = 1e-5


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of shape [N, dim], cosine half first, computed in float32.

    Frequencies run from 1 down to 1/max_period over ``dim // 2`` steps; an odd ``dim`` gets a
    trailing zero column.
    """
    if timesteps.ndim != 1:
        raise ValueError(f"timestep_embedding: expected a 1-D tensor of timesteps, got shape {tuple(timesteps.shape)}")
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(-math.log(max_period) * steps / half)
    args = timesteps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm that normalises in float32 for half-precision inputs, then returns the input dtype."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32:
            return super().forward(x)
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """Multi-head scaled dot-product attention on [B, N, heads*d] tensors; returns [B, N, heads*d]."""
    batch, q_len, width = q.shape
    if width % heads:
        raise ValueError(f"attention: width {width} is not divisible by {heads} heads")
    dim_head = width // heads

    def split(t: Tensor) -> Tensor:
        return t.reshape(batch, t.shape[1], heads, dim_head).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(batch, q_len, width)


class ResBlock(nn.Module):
    """Norm-SiLU-conv, add the projected time embedding, norm-SiLU-dropout-conv, plus the skip path."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, groups: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            GroupNorm32(groups, channels, eps=RESBLOCK_NORM_EPS),
            nn.SiLU(),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(groups, out_channels, eps=RESBLOCK_NORM_EPS),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        # Released checkpoints carry a 1x1 skip conv only where the width changes.
        self.skip_connection: nn.Module = (
            nn.Conv2d(channels, out_channels, 1) if channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        h = self.out_layers(h)
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    """Halve the resolution with a 3x3 stride-2 convolution (symmetric padding)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double the resolution with a nearest-neighbour repeat, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class CrossAttention(nn.Module):
    """Attention from image tokens to themselves (no context) or to text tokens (context given)."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        source = x if context is None else context
        out = attention(self.to_q(x), self.to_k(source), self.to_v(source), self.heads)
        return self.to_out(out)


class GEGLU(nn.Module):
    """Linear projection to twice the width; one half gates the other through GELU."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU MLP with a 4x hidden width: ``net.0.proj`` in, ``net.2`` out."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention and feed-forward, each with a residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, heads, dim_head, context_dim=context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Transformer over the pixels of a feature map, conditioned on text tokens.

    SD1 checkpoints project in/out with 1x1 convolutions; SD2 and SDXL use Linear layers on the
    flattened tokens (``use_linear``). The projections act at different points, as in the originals.
    """

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int,
                 use_linear: bool, groups: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = GroupNorm32(groups, channels, eps=TRANSFORMER_NORM_EPS)
        self.proj_in: nn.Module = (
            nn.Linear(channels, inner) if use_linear else nn.Conv2d(channels, inner, 1)
        )
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)
        )
        self.proj_out: nn.Module = (
            nn.Linear(inner, channels) if use_linear else nn.Conv2d(inner, channels, 1)
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        batch, _, height, width = x.shape
        h = self.norm(x)
        if not self.use_linear:
            h = self.proj_in(h)
        h = h.flatten(2).transpose(1, 2)
        if self.use_linear:
            h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, context)
        if self.use_linear:
            h = self.proj_out(h)
        h = h.transpose(1, 2).reshape(batch, -1, height, width)
        if not self.use_linear:
            h = self.proj_out(h)
        return x + h
