"""The VAE posterior of each training image, computed once and sampled every step.

Encoding an image yields a Gaussian (mean, std) in latent space; training draws one sample per
step. The encoder output depends only on the pixels, so when the pixels of a sample are the same
every time (no random crop) we keep (mean, std) after the first encode and draw
``mean + std * noise`` with the step's generator afterwards: the same distribution, and the same
draws, as running the encoder again, without its cost. Unlike ``cache_latents`` (which fixes one
sample per image, as sd-scripts does) nothing about training changes.
"""

from __future__ import annotations

from pathlib import Path

import torch


class LatentMoments:
    """(mean, std) per (image, flip, size), filled lazily during the first epoch."""

    def __init__(self) -> None:
        self._memo: dict[tuple[Path, bool, tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._memo)

    def sample(self, vae, pixels: torch.Tensor, keys: list[tuple], generator: torch.Generator,
               dtype: torch.dtype) -> torch.Tensor:
        """Scaled latents for ``pixels`` (batch), encoding only the images not seen before."""
        missing = [i for i, key in enumerate(keys) if key not in self._memo]
        if missing:
            with torch.no_grad():
                dist = vae.encode(pixels[missing].to(dtype))
            for row, i in enumerate(missing):
                self._memo[keys[i]] = (dist.mean[row].float(), dist.std[row].float())
        mean = torch.stack([self._memo[key][0] for key in keys])
        std = torch.stack([self._memo[key][1] for key in keys])
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (mean + std * noise) * vae.config.scaling_factor
