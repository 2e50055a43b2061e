"""The VAE posterior of each training image, computed once and sampled every step.

Encoding an image yields a Gaussian (mean, std) in latent space; training draws one sample per
step. The encoder output depends only on the pixels, so when the pixels of a sample are the same
every time (no random crop) we keep (mean, std) and draw ``mean + std * noise`` with the step's
generator: the same distribution, and the same draws, as running the encoder again, without its
cost. Unlike ``cache_latents`` (which fixes one sample per image, as sd-scripts does) nothing
about training changes.

``fill`` computes every posterior before training starts, so the trainer can then let the VAE go
(when no sample images need its decoder); ``sample`` also encodes lazily whatever it has not seen,
as long as it is given the VAE.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Iterable

import torch

from .data import LatentJob, prepare_image

MomentKey = tuple  # (image path, flipped, pixel shape (3, H, W))


class LatentMoments:
    """(mean, std) per (image, flip, size); ``scaling_factor`` is the VAE's latent scale."""

    def __init__(self, scaling_factor: float) -> None:
        self.scaling_factor = scaling_factor
        self._memo: dict[MomentKey, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._memo)

    def fill(self, vae, jobs: Iterable[LatentJob], dtype: torch.dtype, device: torch.device) -> int:
        """Encode every job's image (and its mirror image when the job keeps one); returns how many."""
        encoded = 0
        for job in jobs:
            for flip in (False, True) if job.with_flip else (False,):
                pixels = prepare_image(job.path, job.choice, flip).pixels
                key = (job.path, flip, tuple(pixels.shape))
                if key not in self._memo:
                    self._encode(vae, pixels[None].to(device), [key], dtype)
                    encoded += 1
        return encoded

    def sample(self, vae, pixels: torch.Tensor, keys: list[MomentKey], generator: torch.Generator,
               dtype: torch.dtype) -> torch.Tensor:
        """Scaled latents for ``pixels`` (batch), encoding only the images not seen before."""
        missing = [i for i, key in enumerate(keys) if key not in self._memo]
        if missing:
            if vae is None:
                raise RuntimeError(f"no VAE posterior remembered for {keys[missing[0]][0]} and the VAE was released")
            self._encode(vae, pixels[missing], [keys[i] for i in missing], dtype)
        mean = torch.stack([self._memo[key][0] for key in keys])
        std = torch.stack([self._memo[key][1] for key in keys])
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (mean + std * noise) * self.scaling_factor

    def _encode(self, vae, pixels: torch.Tensor, keys: list[MomentKey], dtype: torch.dtype) -> None:
        with torch.no_grad():
            dist = vae.encode(pixels.to(dtype))
        for row, key in enumerate(keys):
            self._memo[key] = (dist.mean[row].float(), dist.std[row].float())


def image_key(path: Path, flipped: bool, pixels: torch.Tensor) -> MomentKey:
    """The key of one sample's pixels (3, H, W)."""
    return (path, flipped, tuple(pixels.shape))
