"""The Stable Diffusion / SDXL image autoencoder (KL-regularised VAE), written with LDM parameter names.

Module and parameter names match the ``first_stage_model.`` section of single-file SD 1.x / SDXL
checkpoints, so loading is a prefix strip plus a strict ``load_state_dict``. The VAE is frozen
during LoRA training; it only turns images in [-1, 1] (NCHW) into scaled latents and back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import Upsample  # the decoder's upsampler is the U-Net's (same keys: conv.weight/bias)


@dataclass(frozen=True)
class VAEConfig:
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    norm_groups: int = 32
    scaling_factor: float = 0.18215   # SDXL: 0.13025

    def __post_init__(self) -> None:
        if not self.channel_mult:
            raise ValueError("VAEConfig.channel_mult must name at least one resolution level")
        for mult in self.channel_mult:
            width = self.base_channels * mult
            if width <= 0 or width % self.norm_groups != 0:
                raise ValueError(
                    f"VAEConfig: channel width {width} (base_channels {self.base_channels} x mult {mult}) "
                    f"must be positive and divisible by norm_groups {self.norm_groups}"
                )
        if self.num_res_blocks < 1:
            raise ValueError(f"VAEConfig.num_res_blocks must be >= 1, got {self.num_res_blocks}")
        if self.scaling_factor <= 0:
            raise ValueError(f"VAEConfig.scaling_factor must be > 0, got {self.scaling_factor}")

    @property
    def downscale(self) -> int:
        """Pixel-to-latent size ratio (8 for the SD layout)."""
        return 2 ** (len(self.channel_mult) - 1)


SD_VAE = VAEConfig()
SDXL_VAE = VAEConfig(scaling_factor=0.13025)
TINY_VAE = VAEConfig(base_channels=32)
TINY_SDXL_VAE = VAEConfig(base_channels=32, scaling_factor=0.13025)

# LDM's eps for every GroupNorm in the autoencoder (not torch's 1e-5 default).
_NORM_EPS = 1e-6
# Bounds LDM uses on the log-variance so exp() stays finite in half precision.
_LOGVAR_MIN = -30.0
_LOGVAR_MAX = 20.0


class VAEInputError(ValueError):
    """An image or latent tensor handed to the VAE has the wrong rank or channel count."""


class DiagonalGaussian:
    """Per-pixel Gaussian over latents, built from the encoder's stacked (mean, logvar) moments."""

    def __init__(self, moments: Tensor) -> None:
        self.mean, logvar = torch.chunk(moments, 2, dim=1)
        self.logvar = logvar.clamp(_LOGVAR_MIN, _LOGVAR_MAX)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        return self.mean


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=_NORM_EPS, affine=True)


class ResnetBlock(nn.Module):
    """Two norm-SiLU-conv stages with a residual; a 1x1 ``nin_shortcut`` when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut: nn.Module | None = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return shortcut + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, with 1x1-conv projections as in the LDM files."""

    _PROJECTIONS = ("q", "k", "v", "proj_out")

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Some newer exports save these projections as Linear weights [C, C]; same numbers, no 1x1 tail.
        for name in self._PROJECTIONS:
            key = f"{prefix}{name}.weight"
            tensor = state_dict.get(key)
            if isinstance(tensor, Tensor) and 2 <= tensor.ndim < 4:
                state_dict[key] = tensor.reshape(*tensor.shape[:2], 1, 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x)

        def tokens(proj: nn.Conv2d) -> Tensor:
            return proj(h).reshape(batch, 1, channels, height * width).transpose(2, 3)

        out = F.scaled_dot_product_attention(tokens(self.q), tokens(self.k), tokens(self.v))
        out = out.transpose(2, 3).reshape(batch, channels, height, width)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Halve the resolution: pad one pixel right/bottom only (LDM's asymmetric pad), then 3x3 stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class MidBlock(nn.Module):
    """Lowest-resolution stage: resnet, attention, resnet at constant width."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, groups)
        self.attn_1 = AttnBlock(channels, groups)
        self.block_2 = ResnetBlock(channels, channels, groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class ResolutionLevel(nn.Module):
    """One resolution level: a list of resnets named ``block``, then an optional resampler."""

    def __init__(
        self, in_channels: int, out_channels: int, count: int, groups: int,
        resample: tuple[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * count
        self.block = nn.ModuleList(
            ResnetBlock(widths[j], widths[j + 1], groups) for j in range(count)
        )
        # The checkpoint names the resampler after its direction ("downsample" / "upsample").
        self._resample_name = None if resample is None else resample[0]
        if resample is not None:
            self.add_module(*resample)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.block:
            x = block(x)
        if self._resample_name is not None:
            x = getattr(self, self._resample_name)(x)
        return x


class Encoder(nn.Module):
    """Image -> stacked (mean, logvar) moments at 1/downscale resolution."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths = [config.base_channels * m for m in config.channel_mult]
        groups, last = config.norm_groups, len(widths) - 1
        self.conv_in = nn.Conv2d(config.in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        for i, width in enumerate(widths):
            in_width = widths[max(i - 1, 0)]
            resample = ("downsample", Downsample(width)) if i < last else None
            self.down.append(ResolutionLevel(in_width, width, config.num_res_blocks, groups, resample))
        self.mid = MidBlock(widths[-1], groups)
        self.norm_out = _group_norm(widths[-1], groups)
        self.conv_out = nn.Conv2d(widths[-1], 2 * config.latent_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latents -> image. ``up[i]`` follows LDM numbering: the last index is the lowest resolution and runs first."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths = [config.base_channels * m for m in config.channel_mult]
        groups, last = config.norm_groups, len(widths) - 1
        self.conv_in = nn.Conv2d(config.latent_channels, widths[-1], 3, padding=1)
        self.mid = MidBlock(widths[-1], groups)
        self.up = nn.ModuleList()
        for i, width in enumerate(widths):
            in_width = widths[min(i + 1, last)]
            resample = ("upsample", Upsample(width)) if i > 0 else None
            self.up.append(ResolutionLevel(in_width, width, config.num_res_blocks + 1, groups, resample))
        self.norm_out = _group_norm(widths[0], groups)
        self.conv_out = nn.Conv2d(widths[0], config.out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """SD/SDXL VAE whose ``state_dict`` keys equal the checkpoint's ``first_stage_model.*`` keys minus the prefix."""

    def __init__(self, config: VAEConfig = SD_VAE) -> None:
        super().__init__()
        self.config = config
        moments = 2 * config.latent_channels
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(moments, moments, 1)
        self.post_quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, 1)

    def _check_input(self, x: Tensor, channels: int, what: str) -> None:
        if x.ndim != 4 or x.shape[1] != channels:
            raise VAEInputError(
                f"AutoencoderKL: {what} must be NCHW with {channels} channels, got shape {tuple(x.shape)}"
            )

    def encode(self, x: Tensor) -> DiagonalGaussian:
        """Images in [-1, 1] -> latent distribution (unscaled)."""
        self._check_input(x, self.config.in_channels, "image batch")
        return DiagonalGaussian(self.quant_conv(self.encoder(x)))

    def decode(self, z: Tensor) -> Tensor:
        """Unscaled latents -> images in roughly [-1, 1]."""
        self._check_input(z, self.config.latent_channels, "latent batch")
        return self.decoder(self.post_quant_conv(z))

    def encode_latents(
        self, x: Tensor, generator: torch.Generator | None = None, sample: bool = True
    ) -> Tensor:
        """Images -> latents multiplied by ``config.scaling_factor`` (what the U-Net sees)."""
        dist = self.encode(x)
        z = dist.sample(generator) if sample else dist.mode()
        return z * self.config.scaling_factor

    def decode_latents(self, latents: Tensor) -> Tensor:
        """Scaled latents (as produced by ``encode_latents``) -> images."""
        return self.decode(latents / self.config.scaling_factor)
