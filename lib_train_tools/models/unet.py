"""The Stable Diffusion U-Net (SD1.x, SD2.x, SDXL) with the parameter names of LDM/SGM checkpoints.

A single-file checkpoint's ``model.diffusion_model.*`` tensors load into ``UNetModel`` with the
prefix stripped and a strict ``load_state_dict``: nothing is renamed. Which modules exist (and so
which indices appear, e.g. SD1's ``output_blocks.2.1.conv`` versus SDXL's ``output_blocks.2.2.conv``)
follows from the per-level transformer depths in ``UNetConfig``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from .blocks import (
    RESBLOCK_NORM_EPS, Downsample, GroupNorm32, ResBlock, SpatialTransformer, Upsample, timestep_embedding,
)
from ..torch_compat import checkpoint
from .fp8_weights import compute_dtype


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    transformer_depth: tuple[int, ...] = (1, 1, 1, 0)   # per level; 0 = no attention at that level
    transformer_depth_middle: int = 1                   # 0 = no attention in the middle block
    num_heads: int = 8          # fixed head count (SD1); ignored when head_dim > 0
    head_dim: int = -1          # fixed head width (SD2 and SDXL use 64); heads = channels // head_dim
    context_dim: int = 768
    use_linear_proj: bool = False
    adm_in_channels: int = 0    # SDXL: 2816 (pooled text 1280 + 6 size embeddings of 256)
    norm_groups: int = 32

    def __post_init__(self) -> None:
        if not self.channel_mult:
            raise ValueError("UNetConfig.channel_mult must name at least one resolution level")
        if len(self.transformer_depth) != len(self.channel_mult):
            raise ValueError(f"UNetConfig.transformer_depth {self.transformer_depth} needs one entry per level "
                             f"of channel_mult {self.channel_mult}")
        if self.num_res_blocks < 1:
            raise ValueError(f"UNetConfig.num_res_blocks must be >= 1, got {self.num_res_blocks}")
        # The middle block runs at the last level's width, so its attention counts there too.
        depths = self.transformer_depth[:-1] + (max(self.transformer_depth[-1], self.transformer_depth_middle),)
        for width, depth in zip(self.level_widths, depths):
            if width <= 0 or width % self.norm_groups:
                raise ValueError(f"UNetConfig: channel width {width} must be positive and divisible by "
                                 f"norm_groups {self.norm_groups}")
            if depth > 0 and width % self.heads_for(width):
                raise ValueError(f"UNetConfig: channel width {width} does not split into "
                                 f"{self.heads_for(width)} attention heads")
        if self.has_attention and self.context_dim <= 0:
            raise ValueError(f"UNetConfig.context_dim must be > 0 when attention is used, got {self.context_dim}")

    @property
    def level_widths(self) -> tuple[int, ...]:
        return tuple(self.model_channels * m for m in self.channel_mult)

    @property
    def has_attention(self) -> bool:
        return any(d > 0 for d in self.transformer_depth) or self.transformer_depth_middle > 0

    @property
    def time_embed_dim(self) -> int:
        return self.model_channels * 4

    @property
    def downscale(self) -> int:
        """How many times smaller the lowest level is than the input (latent sides must divide by it)."""
        return 2 ** (len(self.channel_mult) - 1)

    def heads_for(self, channels: int) -> int:
        """Attention heads at a level of this width: a fixed count (SD1) or a fixed head width (SD2/SDXL)."""
        return self.num_heads if self.head_dim <= 0 else max(1, channels // self.head_dim)


SD1_UNET = UNetConfig()
SD2_UNET = UNetConfig(head_dim=64, context_dim=1024, use_linear_proj=True)
SDXL_UNET = UNetConfig(
    channel_mult=(1, 2, 4), transformer_depth=(0, 2, 10), transformer_depth_middle=10, head_dim=64,
    context_dim=2048, use_linear_proj=True, adm_in_channels=2816,
)
TINY_SD1_UNET = UNetConfig(model_channels=32, num_heads=8, context_dim=32)
TINY_SD2_UNET = UNetConfig(model_channels=64, head_dim=64, context_dim=64, use_linear_proj=True)
# Tiny pooled text width 64 plus the six 256-wide size embeddings.
TINY_SDXL_UNET = UNetConfig(
    model_channels=32, channel_mult=(1, 2, 4), transformer_depth=(0, 2, 10), transformer_depth_middle=10,
    head_dim=64, context_dim=128, use_linear_proj=True, adm_in_channels=64 + 6 * 256,
)

SDXL_SIZE_EMBED_DIM = 256


class UNetInputError(ValueError):
    """A tensor handed to ``UNetModel.forward`` does not fit the model's configuration."""


def sdxl_size_embedding(time_ids: Tensor, dim: int = SDXL_SIZE_EMBED_DIM) -> Tensor:
    """SDXL size conditioning: each of the [B, 6] ids (original h/w, crop top/left, target h/w)
    embedded sinusoidally to ``dim`` and concatenated -> [B, 6*dim] float32."""
    if time_ids.ndim != 2:
        raise UNetInputError(f"sdxl_size_embedding: expected time ids of shape [batch, 6], got {tuple(time_ids.shape)}")
    return timestep_embedding(time_ids.flatten(), dim).reshape(time_ids.shape[0], -1)


def _batch_timesteps(timesteps: Tensor | float, batch: int, device: torch.device) -> Tensor:
    """One timestep per sample: a single value is shared by the whole batch."""
    t = torch.as_tensor(timesteps, device=device).reshape(-1)
    if t.numel() == 1:
        return t.expand(batch)
    if t.numel() != batch:
        raise UNetInputError(f"U-Net: expected 1 or {batch} timesteps, got {t.numel()}")
    return t


class TimestepBlock(nn.Sequential):
    """One numbered U-Net block: hands the time embedding to ResBlocks and the text to transformers."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None) -> Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class UNetModel(nn.Module):
    """Noise/velocity predictor: (latents, timesteps, text context, optional SDXL vector y) -> latents."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        # Trades compute for memory when gradients flow; each numbered block is recomputed on backward.
        self.gradient_checkpointing: bool = False
        mc, ted = config.model_channels, config.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        if config.adm_in_channels > 0:
            self.label_emb = nn.Sequential(
                nn.Sequential(nn.Linear(config.adm_in_channels, ted), nn.SiLU(), nn.Linear(ted, ted))
            )
        skip_widths = self._build_input_blocks()
        self._build_middle_block()
        self._build_output_blocks(skip_widths)
        self.out = nn.Sequential(
            GroupNorm32(config.norm_groups, mc, eps=RESBLOCK_NORM_EPS),
            nn.SiLU(),
            nn.Conv2d(mc, config.out_channels, 3, padding=1),
        )

    # ------------------------------------------------------------------ construction

    def _transformer(self, channels: int, depth: int) -> SpatialTransformer:
        cfg = self.config
        heads = cfg.heads_for(channels)
        return SpatialTransformer(channels, heads, channels // heads, depth, cfg.context_dim,
                                  cfg.use_linear_proj, cfg.norm_groups)

    def _res_block(self, channels: int, out_channels: int) -> ResBlock:
        return ResBlock(channels, self.config.time_embed_dim, out_channels, self.config.norm_groups)

    def _build_input_blocks(self) -> list[int]:
        """Create ``input_blocks``; returns the width of every block output (the skip connections)."""
        cfg = self.config
        ch = cfg.model_channels
        blocks = [TimestepBlock(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))]
        skip_widths = [ch]
        last = len(cfg.channel_mult) - 1
        for level, width in enumerate(cfg.level_widths):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [self._res_block(ch, width)]
                ch = width
                if cfg.transformer_depth[level] > 0:
                    layers.append(self._transformer(ch, cfg.transformer_depth[level]))
                blocks.append(TimestepBlock(*layers))
                skip_widths.append(ch)
            if level != last:
                blocks.append(TimestepBlock(Downsample(ch)))
                skip_widths.append(ch)
        self.input_blocks = nn.ModuleList(blocks)
        return skip_widths

    def _build_middle_block(self) -> None:
        cfg = self.config
        ch = cfg.level_widths[-1]
        layers: list[nn.Module] = [self._res_block(ch, ch)]
        if cfg.transformer_depth_middle > 0:
            layers.append(self._transformer(ch, cfg.transformer_depth_middle))
        layers.append(self._res_block(ch, ch))
        self.middle_block = TimestepBlock(*layers)

    def _build_output_blocks(self, skip_widths: list[int]) -> None:
        cfg = self.config
        skips = list(skip_widths)
        ch = cfg.level_widths[-1]
        blocks = []
        for level in reversed(range(len(cfg.channel_mult))):
            width = cfg.level_widths[level]
            for i in range(cfg.num_res_blocks + 1):
                layers: list[nn.Module] = [self._res_block(ch + skips.pop(), width)]
                ch = width
                if cfg.transformer_depth[level] > 0:
                    layers.append(self._transformer(ch, cfg.transformer_depth[level]))
                if level > 0 and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                blocks.append(TimestepBlock(*layers))
        self.output_blocks = nn.ModuleList(blocks)

    # ------------------------------------------------------------------ forward

    def _run(self, block: nn.Module, h: Tensor, emb: Tensor, context: Tensor | None) -> Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, h, emb, context)
        return block(h, emb, context)

    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor | None, y: Tensor | None = None) -> Tensor:
        """Predict from latents x [B, C, H, W] at ``timesteps`` [B] (or one for all) given text
        ``context`` [B, T, context_dim] and, for SDXL, ``y`` [B, adm_in_channels]. Output has x's dtype."""
        # 0. check the inputs and bring them to the weights' dtype
        self._check_inputs(x, context, y)
        dtype = compute_dtype(cast(nn.Linear, self.time_embed[0]))  # the working precision, also with fp8 weights
        t = _batch_timesteps(timesteps, x.shape[0], x.device)
        h = x.to(dtype)
        context = None if context is None else context.to(dtype)

        # 1. time embedding, plus the pooled-text/size vector for SDXL
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels).to(dtype))
        if self.config.adm_in_channels > 0:
            assert y is not None  # _check_inputs demands y when adm_in_channels > 0
            emb = emb + self.label_emb(y.to(dtype))

        # 2. down path, keeping every block's output for the skip connections
        skips = []
        for block in self.input_blocks:
            h = self._run(block, h, emb, context)
            skips.append(h)

        # 3. middle
        h = self._run(self.middle_block, h, emb, context)

        # 4. up path, each block eating the matching skip
        for block in self.output_blocks:
            h = self._run(block, torch.cat([h, skips.pop()], dim=1), emb, context)

        # 5. output projection
        return self.out(h).to(x.dtype)

    def _check_inputs(self, x: Tensor, context: Tensor | None, y: Tensor | None) -> None:
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels:
            raise UNetInputError(f"U-Net: latents must be [batch, {cfg.in_channels}, H, W], got {tuple(x.shape)}")
        if x.shape[2] % cfg.downscale or x.shape[3] % cfg.downscale:
            raise UNetInputError(f"U-Net: latent size {tuple(x.shape[2:])} must be a multiple of {cfg.downscale} "
                                 f"(the U-Net halves it {len(cfg.channel_mult) - 1} times)")
        if cfg.has_attention:
            if context is None or context.ndim != 3 or context.shape[-1] != cfg.context_dim:
                got = None if context is None else tuple(context.shape)
                raise UNetInputError(f"U-Net: context must be [batch, tokens, {cfg.context_dim}], got {got}")
        if cfg.adm_in_channels > 0:
            if y is None or tuple(y.shape) != (x.shape[0], cfg.adm_in_channels):
                got = None if y is None else tuple(y.shape)
                raise UNetInputError(f"U-Net: this model needs y of shape [{x.shape[0]}, {cfg.adm_in_channels}] "
                                     f"(pooled text + size embeddings), got {got}")
        elif y is not None:
            raise UNetInputError("U-Net: y was given but this model has no label embedding (adm_in_channels = 0)")
