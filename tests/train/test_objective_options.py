"""sd-scripts' objective options: debiased estimation, loss types with Huber schedules, input perturbation noise."""

from __future__ import annotations

import math

import pytest
import torch

from lib_train_tools.train import loss as losses
from lib_train_tools.train.config import ConfigError, load_config, to_toml
from lib_train_tools.train.noise_schedule import (
    ScheduleError, add_noise, alphas_cumprod, input_perturbation, training_alphas_cumprod, v_target,
)
from lib_train_tools.train.params import get_param
from lib_train_tools.train.step import StepSettings, add_training_noise, compute_loss
from tests.train.test_zero_terminal_snr import _metadata

ACP = alphas_cumprod()


def _snr(t: int, table: torch.Tensor = ACP) -> float:
    return table[t].item() / (1.0 - table[t].item())


# ----- debiased estimation -----
def test_debiased_weights_at_known_timesteps() -> None:
    t = torch.tensor([0, 100, 500, 999])
    eps = losses.debiased_estimation_weight(t)
    v = losses.debiased_estimation_weight(t, v_prediction=True)
    # t = 0: SNR ~ 1175, clamped to 1000 as sd-scripts does
    assert _snr(0) > 1000 and _snr(999) > losses.DEBIASED_SNR_RANGE[0]  # the floor only acts at zero terminal SNR
    assert eps[0].item() == pytest.approx(1 / math.sqrt(1000), rel=1e-6)
    assert v[0].item() == pytest.approx(1 / 1001, rel=1e-6)
    for i, step in enumerate((100, 500, 999), start=1):
        assert eps[i].item() == pytest.approx(1 / math.sqrt(_snr(step)), rel=1e-5)
        assert v[i].item() == pytest.approx(1 / (_snr(step) + 1), rel=1e-5)
    assert eps[2].item() == pytest.approx(1.6183, rel=1e-4)  # SNR(500) = 0.38185


def test_debiased_estimation_scales_the_loss_per_sample() -> None:
    x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    pred, t = torch.zeros_like(x0), torch.tensor([100, 700])
    plain = StepSettings(family="sd1", v_prediction=False)
    debiased = StepSettings(family="sd1", v_prediction=False, debiased_estimation=True)
    per_sample = noise.square().mean(dim=(1, 2, 3))
    expected = (per_sample / torch.tensor([_snr(100), _snr(700)]).sqrt()).mean()
    assert compute_loss(pred, x0, noise, t, torch.ones(2), plain).item() == pytest.approx(per_sample.mean().item())
    assert compute_loss(pred, x0, noise, t, torch.ones(2), debiased).item() == pytest.approx(expected.item(), rel=1e-5)


# ----- Huber schedules -----
def test_huber_c_per_schedule_at_known_timesteps() -> None:
    t = torch.tensor([0, 250, 500, 999])
    constant = losses.huber_c_per_timestep(t, "constant", huber_c=0.2, huber_scale=1.5)
    assert torch.allclose(constant, torch.full((4,), 0.3))
    exponential = losses.huber_c_per_timestep(t, "exponential", huber_c=0.1, huber_scale=2.0)
    # sd-scripts: exp(-a t) * scale with a = -ln(c) / 1000
    a = -math.log(0.1) / 1000
    assert exponential.tolist() == pytest.approx([2.0 * math.exp(-a * s) for s in (0, 250, 500, 999)], rel=1e-6)
    assert exponential[2].item() == pytest.approx(2.0 * math.sqrt(0.1), rel=1e-6)
    snr_c = losses.huber_c_per_timestep(t, "snr", huber_c=0.1, huber_scale=5.0)  # scale unused, as in sd-scripts
    for i, step in enumerate((0, 250, 500, 999)):
        sigma = math.sqrt((1 - ACP[step].item()) / ACP[step].item())
        assert snr_c[i].item() == pytest.approx(0.9 / (1 + sigma) ** 2 + 0.1, rel=1e-5)
    assert snr_c[0].item() > 0.85 and snr_c[3].item() == pytest.approx(0.1 + 0.9 / (1 + 14.6) ** 2, rel=1e-2)


def test_snr_huber_c_at_zero_terminal_snr_is_huber_c() -> None:
    table = training_alphas_cumprod(zero_terminal_snr=True)
    c = losses.huber_c_per_timestep(torch.tensor([999]), "snr", huber_c=0.1, table=table)
    assert c.item() == pytest.approx(0.1, abs=1e-7)


def test_huber_options_are_checked() -> None:
    with pytest.raises(losses.LossError, match="huber_schedule 'cosine'"):
        losses.huber_c_per_timestep(torch.tensor([1]), "cosine")
    with pytest.raises(losses.LossError, match="huber_c must be > 0"):
        losses.huber_c_per_timestep(torch.tensor([1]), "exponential", huber_c=0.0)


@pytest.mark.parametrize("kind", ["huber", "smooth_l1", "l1", "l2"])
def test_compute_loss_uses_the_loss_type_and_scheduled_c(kind) -> None:
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    pred, t = torch.zeros_like(x0), torch.tensor([10, 900])
    settings = StepSettings(family="sd1", v_prediction=True, loss_type=kind, huber_schedule="exponential",
                            huber_c=0.1)
    d = -v_target(x0, noise, t)
    c = torch.tensor([0.1 ** (10 / 1000), 0.1 ** (900 / 1000)]).reshape(2, 1, 1, 1)
    element = {"l2": d.square(), "l1": d.abs(), "smooth_l1": 2 * (torch.sqrt(d.square() + c * c) - c),
               "huber": 2 * c * (torch.sqrt(d.square() + c * c) - c)}[kind]
    expected = element.mean()
    assert compute_loss(pred, x0, noise, t, torch.ones(2), settings).item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_choices_match_the_registry() -> None:
    assert get_param("loss_type").choices == losses.LOSS_KINDS
    assert get_param("huber_schedule").choices == losses.HUBER_SCHEDULES
    assert (get_param("loss_type").default, get_param("huber_schedule").default, get_param("huber_c").default) \
        == ("l2", "snr", 0.1)


# ----- input perturbation and random strengths -----
def _noisy(settings: StepSettings, seed: int = 5):
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(99))
    return latents, add_training_noise(latents, settings, torch.Generator().manual_seed(seed))


def test_ip_noise_changes_the_noisy_input_but_not_the_target_noise() -> None:
    plain_settings = StepSettings(family="sd1", v_prediction=False)
    latents, (plain, noise, t) = _noisy(plain_settings)
    _, (perturbed, noise_ip, t_ip) = _noisy(StepSettings(family="sd1", v_prediction=False, ip_noise_gamma=0.1))
    assert torch.equal(noise, noise_ip) and torch.equal(t, t_ip)   # same draws before the perturbation
    assert not torch.allclose(plain, perturbed)
    # the perturbation is the next N(0, 1) draw of the same generator, scaled by gamma
    replay = torch.Generator().manual_seed(5)
    torch.randn(latents.shape, generator=replay)
    torch.randint(0, 1000, (2,), generator=replay)
    xi = torch.randn(latents.shape, generator=replay)
    assert torch.allclose(perturbed, add_noise(latents, noise + 0.1 * xi, t), atol=1e-6)
    # the target is built from the returned noise: a perfect epsilon prediction has zero loss
    settings = StepSettings(family="sd1", v_prediction=False, ip_noise_gamma=0.1)
    assert compute_loss(noise, latents, noise, t, torch.ones(2), settings).item() == 0.0


def test_random_strengths_scale_by_one_uniform_draw() -> None:
    noise = torch.randn(2, 4, 8, 8)
    full = input_perturbation(noise, 0.5, torch.Generator().manual_seed(3))
    scaled = input_perturbation(noise, 0.5, torch.Generator().manual_seed(3), random_strength=True)
    replay = torch.Generator().manual_seed(3)
    u = torch.rand((), generator=replay).item()
    xi = torch.randn(noise.shape, generator=replay)
    assert torch.allclose(scaled, noise + 0.5 * u * xi, atol=1e-6)
    assert not torch.allclose(full, scaled)
    with pytest.raises(ScheduleError, match="ip_noise_gamma must be >= 0"):
        input_perturbation(noise, -0.1)
    fixed = StepSettings(family="sd1", v_prediction=False, noise_offset=0.1)
    random = StepSettings(family="sd1", v_prediction=False, noise_offset=0.1, noise_offset_random_strength=True)
    assert not torch.allclose(_noisy(fixed)[1][1], _noisy(random)[1][1])


def test_every_option_on_draws_the_same_numbers_for_the_same_seed() -> None:
    settings = StepSettings(family="sdxl", v_prediction=True, zero_terminal_snr=True, noise_offset=0.05,
                            noise_offset_random_strength=True, multires_iterations=3, ip_noise_gamma=0.1,
                            ip_noise_gamma_random_strength=True)
    _, first = _noisy(settings, seed=11)
    _, again = _noisy(settings, seed=11)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    _, other = _noisy(settings, seed=12)
    assert not torch.equal(first[0], other[0])


# ----- config and metadata -----
SD_SCRIPTS_TOML = """
[model_arguments]
pretrained_model_name_or_path = "/models/noobai-xl-vpred.safetensors"
v_parameterization = true
zero_terminal_snr = true

[dataset_arguments]
train_data_dir = "/data/train"
resolution = "1024,1024"

[training_arguments]
output_dir = "/out"
noise_offset = 0.0357
noise_offset_random_strength = true
ip_noise_gamma = 0.1
ip_noise_gamma_random_strength = true
min_snr_gamma = 5
debiased_estimation_loss = true
loss_type = "smooth_l1"
huber_schedule = "exponential"
huber_c = 0.2
huber_scale = 1.5
"""


def test_sd_scripts_toml_with_the_options_loads_unchanged(tmp_path) -> None:
    path = tmp_path / "noob.toml"
    path.write_text(SD_SCRIPTS_TOML, encoding="utf-8")
    cfg, warnings = load_config(str(path))
    assert not [w for w in warnings if "unknown keys" in w], warnings
    assert (cfg.v_parameterization, cfg.zero_terminal_snr) == (True, True)
    assert (cfg.noise_offset, cfg.noise_offset_random_strength) == (0.0357, True)
    assert (cfg.ip_noise_gamma, cfg.ip_noise_gamma_random_strength) == (0.1, True)
    assert (cfg.min_snr_gamma, cfg.debiased_estimation_loss) == (5.0, True)
    assert (cfg.loss_type, cfg.huber_schedule, cfg.huber_c, cfg.huber_scale) == ("smooth_l1", "exponential", 0.2, 1.5)
    again_path = tmp_path / "again.toml"
    again_path.write_text(to_toml(cfg), encoding="utf-8")
    assert load_config(str(again_path))[0] == cfg
    assert get_param("zero_terminal_snr").default is None  # unset: detect from the checkpoint
    bad = tmp_path / "bad.toml"
    bad.write_text('loss_type = "mse"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="loss_type"):
        load_config(str(bad))


def test_metadata_has_the_objective_options(tmp_path) -> None:
    meta = _metadata(tmp_path, True, True, debiased_estimation_loss=True, loss_type="huber", huber_schedule="constant",
                     huber_c=0.3, huber_scale=2.0, ip_noise_gamma=0.1, ip_noise_gamma_random_strength=True,
                     noise_offset=0.05, noise_offset_random_strength=True)
    assert meta["ss_debiased_estimation"] == "True" and meta["ss_loss_type"] == "huber"
    assert (meta["ss_huber_schedule"], meta["ss_huber_c"], meta["ss_huber_scale"]) == ("constant", "0.3", "2.0")
    assert (meta["ss_ip_noise_gamma"], meta["ss_ip_noise_gamma_random_strength"]) == ("0.1", "True")
    assert meta["ss_noise_offset_random_strength"] == "True"
    off = _metadata(tmp_path, False, False)
    assert (off["ss_debiased_estimation"], off["ss_loss_type"], off["ss_ip_noise_gamma"]) == ("False", "l2", "None")
    assert (off["ss_huber_schedule"], off["ss_huber_c"]) == ("snr", "0.1")
