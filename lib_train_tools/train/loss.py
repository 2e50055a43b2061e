"""The training loss: element-wise error per sample, then per-sample and per-timestep weights.

Order (as in kohya's sd-scripts): element-wise loss in float32, mean over C, H, W per sample,
times the sample's weight (``prior_loss_weight`` for regularisation images, else 1), times the
timestep weight (Min-SNR), then the mean over the batch.
"""

from __future__ import annotations

import torch

from .noise_schedule import snr

LOSS_KINDS = ("l2", "l1", "huber", "smooth_l1")
DEFAULT_HUBER_C = 0.1


class LossError(ValueError):
    """A loss option or tensor shape the loss cannot work with."""


def per_sample_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l2",
                    huber_c: float | torch.Tensor = DEFAULT_HUBER_C) -> torch.Tensor:
    """Element-wise loss in float32, averaged over every axis but the batch -> ``[B]``.

    ``huber``: 2c(sqrt(d^2 + c^2) - c); ``smooth_l1``: 2(sqrt(d^2 + c^2) - c) -- the pseudo-Huber
    forms kohya uses (Charbonnier et al. 1997); ``huber_c`` may be one value or one per sample.
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
    return element.reshape(element.shape[0], -1).mean(dim=1)


def min_snr_weight(t: torch.Tensor, gamma: float, v_prediction: bool = False,
                   table: torch.Tensor | None = None) -> torch.Tensor:
    """Min-SNR-gamma weight per timestep (Hang et al. 2023, "Efficient Diffusion Training via
    Min-SNR Weighting Strategy", eq. 9 and its v form): min(SNR, gamma) / SNR for an epsilon target,
    min(SNR, gamma) / (SNR + 1) for a v target."""
    if gamma <= 0:
        raise LossError(f"min_snr_gamma must be > 0, got {gamma}")
    ratio = snr(t, table)
    clipped = torch.clamp(ratio, max=float(gamma))
    return clipped / (ratio + 1.0) if v_prediction else clipped / ratio


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
