"""Tests for the loss: per-sample reduction, loss kinds, Min-SNR and prior-loss weights (hand-computed)."""

from __future__ import annotations

import math

import pytest
import torch

from lib_train_tools.train.loss import LossError, batch_loss, min_snr_weight, per_sample_loss, sample_weights
from lib_train_tools.train.noise_schedule import alphas_cumprod


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    pred = torch.zeros(2, 1, 1, 2)
    target = torch.tensor([[[[1.0, 3.0]]], [[[-2.0, 0.0]]]])
    return pred, target


def test_per_sample_loss_kinds() -> None:
    pred, target = _pair()
    assert per_sample_loss(pred, target).tolist() == pytest.approx([(1 + 9) / 2, (4 + 0) / 2])
    assert per_sample_loss(pred, target, "l1").tolist() == pytest.approx([2.0, 1.0])
    c = 0.5
    huber = [2 * c * (math.sqrt(d * d + c * c) - c) for d in (1.0, 3.0, 2.0, 0.0)]
    assert per_sample_loss(pred, target, "huber", c).tolist() == pytest.approx(
        [(huber[0] + huber[1]) / 2, (huber[2] + huber[3]) / 2])
    smooth = per_sample_loss(pred, target, "smooth_l1", torch.tensor([0.5, 1.0]))
    assert smooth[1].item() == pytest.approx((2 * (math.sqrt(4 + 1) - 1) + 0.0) / 2)


def test_per_sample_loss_runs_in_float32_and_checks_inputs() -> None:
    pred = torch.full((1, 4, 2, 2), 300.0, dtype=torch.float16)
    target = torch.zeros(1, 4, 2, 2, dtype=torch.float16)
    out = per_sample_loss(pred, target)
    assert out.dtype == torch.float32 and out.item() == pytest.approx(90000.0)   # > fp16's 65504
    with pytest.raises(LossError, match="differ"):
        per_sample_loss(pred, target[:, :3])
    with pytest.raises(LossError, match="unknown"):
        per_sample_loss(pred, target, "l3")


def test_min_snr_weight_hand_computed() -> None:
    acp = alphas_cumprod()
    t = torch.tensor([0, 500, 999])
    snr = [(acp[i] / (1 - acp[i])).item() for i in t.tolist()]
    gamma = 5.0
    eps = min_snr_weight(t, gamma, v_prediction=False)
    v = min_snr_weight(t, gamma, v_prediction=True)
    assert eps.tolist() == pytest.approx([min(s, gamma) / s for s in snr], rel=1e-5)
    assert v.tolist() == pytest.approx([min(s, gamma) / (s + 1) for s in snr], rel=1e-5)
    assert eps[2].item() == pytest.approx(1.0)          # SNR < gamma: unweighted
    assert eps[0].item() == pytest.approx(gamma / snr[0], rel=1e-5)
    with pytest.raises(LossError, match="min_snr_gamma"):
        min_snr_weight(t, 0.0)


def test_prior_loss_weight_and_batch_mean() -> None:
    weights = sample_weights(torch.tensor([False, True, False]), prior_loss_weight=0.25)
    assert weights.tolist() == [1.0, 0.25, 1.0]
    per_sample = torch.tensor([2.0, 4.0, 6.0])
    assert batch_loss(per_sample, weights).item() == pytest.approx((2.0 + 1.0 + 6.0) / 3)
    snr_w = torch.tensor([0.5, 1.0, 0.1])
    assert batch_loss(per_sample, weights, snr_w).item() == pytest.approx((1.0 + 1.0 + 0.6) / 3)
    assert batch_loss(per_sample).item() == pytest.approx(4.0)
    with pytest.raises(LossError, match="must match"):
        batch_loss(per_sample, torch.ones(2))
    with pytest.raises(LossError, match="prior_loss_weight"):
        sample_weights(torch.tensor([True]), -1.0)
