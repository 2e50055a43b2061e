"""Tests for the samplers: full runs equal diffusers' schedulers driven by the same fake model."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler

from lib_train_tools.train.noise_schedule import BETA_END, BETA_START
from lib_train_tools.train.sampling import (
    SAMPLERS, CFGDenoiser, DiscreteDenoiser, SamplerError, ancestral_step, ddim_sigmas, discrete_sigmas,
    model_sigmas, resolve_sampler, sample_ddim, sample_euler_ancestral, sigma_to_timestep, timestep_to_sigma,
)

SCHEDULE = dict(num_train_timesteps=1000, beta_start=BETA_START, beta_end=BETA_END, beta_schedule="scaled_linear")
SHAPE = (1, 4, 4, 4)


def fake_model(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """A fixed smooth function of the input and the timestep (stands in for a U-Net)."""
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1, 1, 1)
    out = 0.8 * x + 0.3 * torch.sin(t / 150.0) * x.flip(-1) + 0.05 * (t / 1000.0)
    return out if context is None else out + context.reshape(-1, 1, 1, 1)


def test_timestep_sigma_mapping_round_trips_and_matches_table() -> None:
    table = model_sigmas()
    t = torch.tensor([0.0, 1.0, 250.5, 998.25, 999.0])
    assert torch.allclose(sigma_to_timestep(timestep_to_sigma(t, table), table), t, atol=1e-3)
    assert torch.allclose(timestep_to_sigma(torch.tensor([0.0, 500.0, 999.0]), table), table[[0, 500, 999]])
    # between two entries the log-sigma is the average
    mid = timestep_to_sigma(torch.tensor([10.5]), table)
    assert torch.allclose(mid.log(), (table[10].log() + table[11].log()) / 2, atol=1e-6)
    assert sigma_to_timestep(torch.tensor([1e-6, 1e6]), table).tolist() == pytest.approx([0.0, 999.0])


def test_schedules_match_diffusers_timesteps() -> None:
    table = model_sigmas()
    ddim = DDIMScheduler(**SCHEDULE, timestep_spacing="leading", steps_offset=1)
    ddim.set_timesteps(7)
    assert torch.allclose(ddim_sigmas(7, table)[:-1], table[ddim.timesteps.long()])
    euler = EulerAncestralDiscreteScheduler(**SCHEDULE, timestep_spacing="linspace")
    euler.set_timesteps(10)
    assert torch.allclose(discrete_sigmas(10, table), euler.sigmas.float(), rtol=1e-4)  # float32 vs float64 tables
    assert discrete_sigmas(10, table)[-1] == 0 and len(ddim_sigmas(7, table)) == 8
    with pytest.raises(SamplerError, match="between 1 and 1000"):
        discrete_sigmas(0, table)


def test_euler_ancestral_equals_diffusers() -> None:
    steps = 10    # 999 / (steps - 1) is whole, so k-diffusion's and diffusers' linspace timesteps coincide
    scheduler = EulerAncestralDiscreteScheduler(**SCHEDULE, timestep_spacing="linspace")
    scheduler.set_timesteps(steps)
    start = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3)) * scheduler.sigmas[0]
    generator = torch.Generator().manual_seed(11)
    expected = start.clone()
    for t in scheduler.timesteps:
        eps = fake_model(scheduler.scale_model_input(expected, t), t)
        expected = scheduler.step(eps, t, expected, generator=generator).prev_sample

    table = model_sigmas()
    denoiser = DiscreteDenoiser(fake_model, table)
    seen = []
    ours = sample_euler_ancestral(denoiser, start.clone(), discrete_sigmas(steps, table),
                                  callback=lambda info: seen.append(info["i"]),
                                  generator=torch.Generator().manual_seed(11))
    assert seen == list(range(steps))
    assert torch.allclose(ours, expected, atol=1e-4)
    other_seed = sample_euler_ancestral(denoiser, start.clone(), discrete_sigmas(steps, table),
                                        generator=torch.Generator().manual_seed(12))
    assert not torch.allclose(other_seed, expected, atol=1e-2)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddim_equals_diffusers(prediction: str) -> None:
    steps = 8
    scheduler = DDIMScheduler(**SCHEDULE, timestep_spacing="leading", steps_offset=1, clip_sample=False,
                              set_alpha_to_one=True, prediction_type=prediction)
    scheduler.set_timesteps(steps)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    expected = noise.clone()
    for t in scheduler.timesteps:
        expected = scheduler.step(fake_model(expected, t), t, expected).prev_sample

    table = model_sigmas()
    sigmas = ddim_sigmas(steps, table)
    denoiser = DiscreteDenoiser(fake_model, table, v_prediction=prediction == "v_prediction")
    # diffusers starts from the DDPM sample; in sigma form x = x_ddpm * sqrt(sigma^2 + 1)
    ours = sample_ddim(denoiser, noise * (sigmas[0] ** 2 + 1).sqrt(), sigmas)
    assert torch.allclose(ours, expected, atol=1e-4)


def test_denoiser_outputs_for_eps_and_v() -> None:
    table = model_sigmas()
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    sigma = table[600:601]
    eps = fake_model(x / (sigma ** 2 + 1).sqrt(), torch.tensor([600.0]))
    assert torch.allclose(DiscreteDenoiser(fake_model, table)(x, sigma), x - sigma * eps, atol=1e-4)
    expected_v = x / (sigma ** 2 + 1) - sigma / (sigma ** 2 + 1).sqrt() * eps
    assert torch.allclose(DiscreteDenoiser(fake_model, table, True)(x, sigma), expected_v, atol=1e-4)


def test_cfg_combines_cond_and_uncond_in_one_batch() -> None:
    calls = []

    def denoiser(x, sigma, context):
        calls.append(x.shape[0])
        return x + context.reshape(-1, 1, 1, 1)

    x = torch.zeros(SHAPE)
    out = CFGDenoiser(denoiser)(x, torch.tensor(1.0), {"context": torch.tensor([2.0]), "y": None},
                                {"context": torch.tensor([0.5]), "y": None}, cond_scale=3.0)
    assert calls == [2]
    assert torch.allclose(out, torch.full(SHAPE, 0.5 + 3.0 * (2.0 - 0.5)))
    with pytest.raises(SamplerError, match="differ"):
        CFGDenoiser(denoiser)(x, torch.tensor(1.0), {"context": torch.ones(1)}, {})


def test_ancestral_step_and_sampler_names() -> None:
    down, up = ancestral_step(2.0, 1.0)
    assert down ** 2 + up ** 2 == pytest.approx(1.0)
    assert up == pytest.approx((1.0 * (4.0 - 1.0) / 4.0) ** 0.5)
    assert ancestral_step(2.0, 0.0) == (0.0, 0.0)
    assert resolve_sampler("k_euler_a") == ("euler_a", None)
    assert resolve_sampler("DDIM") == ("ddim", None)
    name, warning = resolve_sampler("dpmsolver++")
    assert name in SAMPLERS and "dpmsolver++" in warning


def test_ddim_on_a_zero_terminal_snr_schedule_starts_at_the_last_timestep() -> None:
    from lib_train_tools.train.noise_schedule import training_alphas_cumprod
    from lib_train_tools.train.sampling import reaches_zero_snr

    ztsnr = model_sigmas(training_alphas_cumprod(zero_terminal_snr=True))
    assert reaches_zero_snr(ztsnr) and not reaches_zero_snr(model_sigmas())
    trailing = DDIMScheduler(**SCHEDULE, timestep_spacing="trailing", rescale_betas_zero_snr=True)
    for steps in (1, 7, 20, 30):
        trailing.set_timesteps(steps)
        sigmas = ddim_sigmas(steps, ztsnr)
        assert torch.equal(sigmas[:-1], ztsnr[trailing.timesteps.long()])
        assert sigmas[0] == ztsnr[-1] and sigmas[-1] == 0   # pure noise first, the clean estimate last
    assert ddim_sigmas(20, model_sigmas())[0] == model_sigmas()[951]   # SD's own schedule keeps "leading"
