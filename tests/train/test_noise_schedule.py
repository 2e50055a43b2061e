"""Tests for the DDPM schedule and the noise variants: equal to diffusers, deterministic, right statistics."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from lib_train_tools.train.noise_schedule import (
    BETA_END, BETA_START, ScheduleError, add_noise, alphas_cumprod, apply_noise_offset, multires_noise,
    sample_timesteps, snr, v_target,
)


def _ddpm() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_start=BETA_START, beta_end=BETA_END,
                         beta_schedule="scaled_linear", clip_sample=False)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_alphas_cumprod_equals_diffusers() -> None:
    ours = alphas_cumprod()
    assert ours.shape == (1000,) and ours.dtype == torch.float64
    assert torch.allclose(ours.float(), _ddpm().alphas_cumprod, rtol=1e-5, atol=1e-7)
    assert ours[0].item() == pytest.approx(1 - BETA_START)


def test_add_noise_and_v_target_equal_diffusers() -> None:
    x0 = torch.randn(3, 4, 8, 8, generator=_gen(0))
    noise = torch.randn(3, 4, 8, 8, generator=_gen(1))
    t = torch.tensor([0, 500, 999])
    reference = _ddpm()
    assert torch.allclose(add_noise(x0, noise, t), reference.add_noise(x0, noise, t), atol=1e-5)
    assert torch.allclose(v_target(x0, noise, t), reference.get_velocity(x0, noise, t), atol=1e-5)
    half = add_noise(x0.half(), noise.half(), t)
    assert half.dtype == torch.float16
    with pytest.raises(ScheduleError, match="0..999"):
        add_noise(x0, noise, torch.tensor([0, 1, 1000]))


def test_snr_values() -> None:
    acp = alphas_cumprod()
    values = snr(torch.tensor([0, 999]))
    assert values.tolist() == pytest.approx([(acp[0] / (1 - acp[0])).item(), (acp[999] / (1 - acp[999])).item()],
                                            rel=1e-5)
    assert values[0] > 1000 and values[1] < 0.01


def test_sample_timesteps_respects_the_range() -> None:
    t = sample_timesteps(5000, 100, 200, _gen(0))
    assert t.dtype == torch.long and t.shape == (5000,)
    assert int(t.min()) == 100 and int(t.max()) == 199
    assert torch.equal(t, sample_timesteps(5000, 100, 200, _gen(0)))
    assert not torch.equal(t, sample_timesteps(5000, 100, 200, _gen(1)))
    full = sample_timesteps(20000, generator=_gen(2))
    assert int(full.min()) == 0 and int(full.max()) == 999
    assert sample_timesteps(4, 300, 300, _gen(0)).tolist() == [300] * 4
    for low, high in [(500, 400), (-1, 10), (0, 1001), (1000, 1000)]:
        with pytest.raises(ScheduleError, match="timestep range"):
            sample_timesteps(2, low, high, _gen(0))


def test_noise_offset_is_a_per_channel_constant_of_the_given_size() -> None:
    noise = torch.randn(2000, 4, 8, 8, generator=_gen(0))
    shifted = apply_noise_offset(noise, 0.1, _gen(1))
    delta = shifted - noise
    assert torch.allclose(delta, delta[:, :, :1, :1].expand_as(delta), atol=1e-6)
    assert delta[:, :, 0, 0].std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(shifted, apply_noise_offset(noise, 0.1, _gen(1)))
    weaker = apply_noise_offset(noise, 0.1, _gen(1), random_strength=True) - noise
    ratio = weaker[:, :, 0, 0].std().item() / 0.1
    assert 0.0 < ratio < 1.0
    with pytest.raises(ScheduleError, match="noise_offset"):
        apply_noise_offset(noise, -0.1, _gen(1))


def _neighbour_correlation(x: torch.Tensor) -> float:
    a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def test_multires_noise_shape_determinism_and_statistics() -> None:
    noise = torch.randn(8, 4, 32, 32, generator=_gen(0))
    pyramid = multires_noise(noise, 6, 0.8, _gen(1))
    assert pyramid.shape == noise.shape and pyramid.dtype == noise.dtype
    assert pyramid.std().item() == pytest.approx(1.0, abs=1e-5)
    assert abs(pyramid.mean().item()) < 0.3
    assert torch.equal(pyramid, multires_noise(noise, 6, 0.8, _gen(1)))
    assert not torch.equal(pyramid, multires_noise(noise, 6, 0.8, _gen(2)))
    # coarse levels make neighbouring pixels alike; plain Gaussian noise has no such correlation
    assert abs(_neighbour_correlation(noise)) < 0.05
    assert _neighbour_correlation(pyramid) > 0.15
    assert torch.equal(noise, torch.randn(8, 4, 32, 32, generator=_gen(0)))   # input left untouched
    with pytest.raises(ScheduleError, match="iterations"):
        multires_noise(noise, 0, 0.3, _gen(1))
