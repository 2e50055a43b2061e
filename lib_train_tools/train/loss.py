"""The training loss: element-wise error per sample, then per-sample and per-timestep weights.

Order (as in kohya's sd-scripts): element-wise loss in float32, times the loss mask when
``masked_loss`` is on, mean over C, H, W per sample,
times the sample's weight (``prior_loss_weight`` for regularisation images, else 1), times the
timestep weights (Min-SNR, debiased estimation), then the mean over the batch.

Every weight reads the SNR from the run's schedule (``table``); with a zero-terminal-SNR schedule
the last timestep has SNR 0, and no weight here divides by it.
"""

from __future__ import annotations

import math

import torch

from .noise_schedule import NUM_TRAIN_TIMESTEPS, alphas_cumprod, snr

LOSS_KINDS = ("l2", "l1", "huber", "smooth_l1")
HUBER_KINDS = ("huber", "smooth_l1")
HUBER_SCHEDULES = ("constant", "exponential", "snr")
DEFAULT_HUBER_C = 0.1
# Debiased estimation clamps the SNR into this range: the upper bound is sd-scripts' (SNR at t = 0
# is about 1175); the lower one, for the epsilon form only, acts on a zero-terminal-SNR schedule's
# last steps alone, where 1 / sqrt(SNR) would be infinite (the standard schedule's smallest SNR is
# about 0.0047).
DEBIASED_SNR_RANGE = (1e-3, 1000.0)


class LossError(ValueError):
    """A loss option or tensor shape the loss cannot work with."""


def per_sample_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l2",
                    huber_c: float | torch.Tensor = DEFAULT_HUBER_C,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """Element-wise loss in float32, averaged over every axis but the batch -> ``[B]``.

    ``huber``: 2c(sqrt(d^2 + c^2) - c); ``smooth_l1``: 2(sqrt(d^2 + c^2) - c) -- the pseudo-Huber
    forms kohya uses (Charbonnier et al. 1997); ``huber_c`` may be one value or one per sample.

    ``mask`` (B, 1, h, w) in [0, 1] (``masked_loss``) multiplies the element-wise loss, broadcast over
    the channels and area-averaged to the loss's h x w first when its size differs. The mean then
    divides by the number of elements, not by the mask's sum, as sd-scripts' ``apply_masked_loss``
    does: a half-masked image contributes half the loss of the same error unmasked, and an all-zero
    mask gives 0.
    """
    if pred.shape != target.shape:
        raise LossError(f"per_sample_loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if kind not in LOSS_KINDS:
        raise LossError(f"loss type {kind!r} is unknown; choose from {LOSS_KINDS}")
    diff = pred.float() - target.float()
    if kind == "l2":
        element = diff.square()
    elif kind == "l1":
        element = diff.abs()
    else:
        c = torch.as_tensor(huber_c, dtype=torch.float32, device=diff.device)
        c = c.reshape(-1, *([1] * (diff.dim() - 1))) if c.dim() else c
        element = 2.0 * (torch.sqrt(diff.square() + c * c) - c)
        if kind == "huber":
            element = element * c
    if mask is not None:
        element = element * _fit_mask(mask, element)
    return element.reshape(element.shape[0], -1).mean(dim=1)


def _fit_mask(mask: torch.Tensor, element: torch.Tensor) -> torch.Tensor:
    """``mask`` as float32 (B, 1, h, w) on the loss's device, area-resized to the loss's h x w."""
    if element.dim() != 4 or mask.dim() != 4 or mask.shape[0] != element.shape[0] or mask.shape[1] != 1:
        raise LossError(f"loss mask {tuple(mask.shape)} does not fit the loss {tuple(element.shape)}; "
                        "expected (B, 1, h, w)")
    mask = mask.to(element.device, torch.float32)
    if mask.shape[2:] != element.shape[2:]:
        mask = torch.nn.functional.interpolate(mask, size=tuple(element.shape[2:]), mode="area")
    return mask


def min_snr_weight(t: torch.Tensor, gamma: float, v_prediction: bool = False,
                   table: torch.Tensor | None = None) -> torch.Tensor:
    """Min-SNR-gamma weight per timestep (Hang et al. 2023, "Efficient Diffusion Training via
    Min-SNR Weighting Strategy", eq. 9 and its v form): min(SNR, gamma) / SNR for an epsilon target,
    min(SNR, gamma) / (SNR + 1) for a v target.

    The epsilon form is computed as gamma / max(SNR, gamma), its value wherever SNR > 0, so at
    SNR = 0 (the last step of a zero-terminal-SNR schedule) it is 1, its limit, not 0 / 0."""
    if gamma <= 0:
        raise LossError(f"min_snr_gamma must be > 0, got {gamma}")
    ratio = snr(t, table)
    if v_prediction:
        return torch.clamp(ratio, max=float(gamma)) / (ratio + 1.0)
    return float(gamma) / torch.clamp(ratio, min=float(gamma))


def debiased_estimation_weight(t: torch.Tensor, v_prediction: bool = False,
                               table: torch.Tensor | None = None) -> torch.Tensor:
    """Debiased-estimation weight per timestep (Yu et al. 2023, "Debias the Training of Diffusion
    Models"): 1 / sqrt(SNR) for an epsilon target, and 1 / (SNR + 1) for a v target, as sd-scripts'
    ``debiased_estimation_loss`` weighs them, with SNR clamped to ``DEBIASED_SNR_RANGE`` (its lower
    bound only for the epsilon form, the one that divides by SNR)."""
    low, high = DEBIASED_SNR_RANGE
    ratio = snr(t, table).clamp(max=high)
    return 1.0 / (ratio + 1.0) if v_prediction else ratio.clamp(min=low).rsqrt()


def huber_c_per_timestep(t: torch.Tensor, schedule: str = "snr", huber_c: float = DEFAULT_HUBER_C,
                         huber_scale: float = 1.0, table: torch.Tensor | None = None) -> torch.Tensor:
    """The pseudo-Huber threshold ``c`` for each sample's timestep, float32 on t's device.

    Schedules of Khrapov & Popov 2024, "Improving Diffusion Models's Data-Corruption Resistance
    using Scheduled Pseudo-Huber Loss", as sd-scripts names them, with N = 1000 timesteps:
    ``constant``: c = huber_c * huber_scale; ``exponential``: c = huber_scale * huber_c^(t / N),
    i.e. exp(-a t) with a = -ln(huber_c) / N, from huber_scale at t = 0 down to huber_c * huber_scale
    at t = N; ``snr``: c = (1 - huber_c) / (1 + sigma_t)^2 + huber_c with
    sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), near 1 for clean steps and huber_c for noisy
    ones (huber_scale is not used there, as in sd-scripts). 1 / (1 + sigma)^2 is evaluated as
    alpha_bar / (sqrt(alpha_bar) + sqrt(1 - alpha_bar))^2, which is 0 at zero terminal SNR.
    """
    if schedule not in HUBER_SCHEDULES:
        raise LossError(f"huber_schedule {schedule!r} is unknown; choose from {HUBER_SCHEDULES}")
    if huber_c <= 0:
        raise LossError(f"huber_c must be > 0, got {huber_c}")
    t = torch.as_tensor(t).reshape(-1)
    steps = t.double().cpu()
    if schedule == "constant":
        c = torch.full_like(steps, huber_c * huber_scale)
    elif schedule == "exponential":
        c = huber_scale * torch.exp(math.log(huber_c) * steps / NUM_TRAIN_TIMESTEPS)
    else:
        table = alphas_cumprod() if table is None else table.double().cpu()
        abar = table[t.long().cpu()]
        inverse_square = abar / (abar.sqrt() + (1.0 - abar).sqrt()).square()
        c = (1.0 - huber_c) * inverse_square + huber_c
    return c.to(t.device, torch.float32)


def sample_weights(is_regularisation: torch.Tensor, prior_loss_weight: float = 1.0) -> torch.Tensor:
    """Per-sample weights: ``prior_loss_weight`` for regularisation images, 1 for training images."""
    if prior_loss_weight < 0:
        raise LossError(f"prior_loss_weight must be >= 0, got {prior_loss_weight}")
    is_reg = torch.as_tensor(is_regularisation, dtype=torch.bool)
    return torch.where(is_reg, torch.tensor(float(prior_loss_weight)), torch.tensor(1.0))


def batch_loss(per_sample: torch.Tensor, weights: torch.Tensor | None = None,
               timestep_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of ``per_sample * weights * timestep_weights`` (either weight may be None)."""
    if per_sample.dim() != 1:
        raise LossError(f"batch_loss expects per-sample losses [B], got {tuple(per_sample.shape)}")
    total = per_sample
    for name, w in (("weights", weights), ("timestep_weights", timestep_weights)):
        if w is None:
            continue
        if w.shape != per_sample.shape:
            raise LossError(f"batch_loss: {name} {tuple(w.shape)} must match the batch {tuple(per_sample.shape)}")
        total = total * w.to(total.device, total.dtype)
    return total.mean()
