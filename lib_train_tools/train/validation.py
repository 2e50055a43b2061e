"""The validation loss: the training objective on held-out images, over fixed draws.

With ``validation_split`` the dataset holds some training images out (``data/held_out.py``). The
validation loss is the mean, over those images (at most ``max_validation_steps`` of them) and
``DRAWS_PER_IMAGE`` draws each, of the loss the training step computes (``step.encode_batch``,
``add_training_noise``, ``predict``, ``compute_loss``: the same target, loss type and weights):

    L_val = 1 / (N K) * sum_i sum_k loss(eps_theta(x_t_ik, t_ik, c_i), target(x_i, eps_ik, t_ik))

Every random number of image ``i`` (its latent sample when the VAE posterior is sampled, then each
draw's noise and timestep) comes from a generator seeded by (``validation_seed``, the image's
``<folder>/<file>``) and reseeded at every measurement, never from the training generator. So each
measurement uses the very same (noise, timestep) draws: epochs are comparable (only the weights
differ), and a resumed run measures exactly what an uninterrupted one would. The held-out images
are loaded without flip, random crop or caption shuffling/dropout; the LoRA runs in eval mode (no
dropout) at multiplier 1, with no gradient.

Measurements happen on the main process after every ``validate_every_n_epochs``-th epoch (unset:
every epoch, as in sd-scripts) and every ``validate_every_n_steps`` steps; each writes a
``validation`` progress event.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .. import torch_compat
from .data.seeds import derive_seed
from .protocol import ValidationEvent
from .step import add_training_noise, compute_loss, encode_batch, predict, unet_kernels

DRAWS_PER_IMAGE = 4  # (noise, timestep) draws per held-out image, as sd-scripts' four validation timesteps


@dataclass(frozen=True)
class ValidationResult:
    """One measurement: the mean loss, and the mean over the draws of each image measured."""

    loss: float
    image_losses: tuple[float, ...]
    draws: int


def image_seed(seed: int, key: str) -> int:
    """The seed of every draw made for the held-out image named ``key`` (independent of the run's step)."""
    return derive_seed(seed, f"validation:{key}")


def image_generator(seed: int, key: str, device: torch.device) -> torch.Generator:
    return torch.Generator(device).manual_seed(image_seed(seed, key))


def is_due(cfg: Any, epoch: int, step: int, epoch_end: bool) -> bool:
    """Whether a measurement is due after this step or epoch (``epoch`` counted from 0)."""
    if epoch_end:
        n = cfg.validate_every_n_epochs
        return n is None or (epoch + 1) % n == 0
    n = cfg.validate_every_n_steps
    return bool(n) and step % n == 0


class Validator:
    """Measures the validation loss of a session's held-out images (inactive when there are none)."""

    def __init__(self, s: Any) -> None:
        self.held_out = s.dataset.held_out
        self.seed: int = s.dataset.options.held_out_seed
        count = len(self.held_out.items) if self.held_out is not None else 0
        limit = s.cfg.max_validation_steps
        self.images = min(count, limit) if limit else count

    @property
    def active(self) -> bool:
        return self.images > 0

    def measure(self, s: Any) -> ValidationResult:
        """The validation loss of the session's current weights."""
        assert self.held_out is not None  # only measured when active
        with _evaluation(s.network):
            losses = tuple(self.image_loss(s, index) for index in range(self.images))
        return ValidationResult(sum(losses) / len(losses), losses, DRAWS_PER_IMAGE)

    @torch.no_grad()
    def image_loss(self, s: Any, index: int) -> float:
        """Mean loss of held-out image ``index`` over its fixed draws."""
        assert self.held_out is not None
        batch = self.held_out.load_item(index, s.latent_cache, s.text_cache)
        generator = image_generator(self.seed, self.held_out.item_key(index), s.device)
        latents, cond = encode_batch(s.models, s.tokenizers, batch, s.settings, s.device, s.weight_dtype, generator,
                                     s.latent_moments)
        total = 0.0
        for _ in range(DRAWS_PER_IMAGE):
            noisy, noise, t = add_training_noise(latents, s.settings, generator)
            with unet_kernels(s.device):
                with torch_compat.autocast(s.device, s.weight_dtype, enabled=s.weight_dtype != torch.float32):
                    pred = predict(s.models.unet, noisy, t, cond, s.weight_dtype)
                total += compute_loss(pred, latents, noise, t, batch.loss_weights, s.settings, batch.masks).item()
        return total / DRAWS_PER_IMAGE


@contextlib.contextmanager
def _evaluation(network: Any) -> Iterator[None]:
    """The LoRA in eval mode (no dropout) at multiplier 1 for the duration; restored afterwards."""
    was_training = network.training
    multipliers = [module.multiplier for module in network.loras()]
    network.eval()
    network.set_multiplier(1.0)
    try:
        yield
    finally:
        for module, multiplier in zip(network.loras(), multipliers):
            module.multiplier = multiplier
        network.train(was_training)


def maybe_validate(s: Any, progress: Any, validator: Validator, epoch: int, step: int,
                   epoch_end: bool) -> ValidationResult | None:
    """Measure and report when due (main process only); ``epoch`` counted from 0."""
    if not validator.active or not s.dist.is_main or not is_due(s.cfg, epoch, step, epoch_end):
        return None
    result = validator.measure(s)
    progress.write(ValidationEvent(step=step, epoch=epoch + 1, epoch_end=epoch_end, loss=result.loss,
                                   images=len(result.image_losses), draws=result.draws))
    return result
