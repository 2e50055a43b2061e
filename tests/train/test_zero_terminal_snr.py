"""v-prediction with zero terminal SNR: the rescaled schedule, marker detection, weights, sampling, metadata, a run."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr as diffusers_rescale
from safetensors import safe_open
from safetensors.torch import save_file

from lib_train_tools.models.checkpoint_factory import VPRED_ZTSNR, build_state_dict, write_checkpoint
from lib_train_tools.models.loader import load_checkpoint
from lib_train_tools.models.prediction import decide_prediction
from lib_train_tools.results.own_renderer import trained_prediction
from lib_train_tools.train import loss as losses
from lib_train_tools.train.cli import main
from lib_train_tools.train.config import TrainConfig
from lib_train_tools.train.lora_metadata import build_metadata
from lib_train_tools.train.noise_schedule import (
    BETA_END, BETA_START, ScheduleError, add_noise, alphas_cumprod, rescale_zero_terminal_snr, snr,
    training_alphas_cumprod, v_target,
)
from lib_train_tools.train.sample_images import generate_sample
from lib_train_tools.train.sample_prompts import SamplePrompt
from lib_train_tools.train.sampling import (
    SAMPLING_MIN_ALPHA_BAR, DiscreteDenoiser, discrete_sigmas, model_sigmas, sample_euler, sigma_to_timestep,
)
from lib_train_tools.train.step import StepSettings, compute_loss
from tests.train.test_training_run import events, make_dataset, run_args

ZTSNR = training_alphas_cumprod(zero_terminal_snr=True)


# ----- the schedule -----
def test_rescaled_schedule_equals_diffusers_rescale_zero_terminal_snr() -> None:
    betas = torch.linspace(BETA_START ** 0.5, BETA_END ** 0.5, 1000, dtype=torch.float32) ** 2
    reference = torch.cumprod(1.0 - diffusers_rescale(betas), dim=0).double()
    assert torch.allclose(ZTSNR, reference, rtol=0, atol=1e-6)
    scheduler = DDPMScheduler(beta_start=BETA_START, beta_end=BETA_END, beta_schedule="scaled_linear",
                              rescale_betas_zero_snr=True)
    assert torch.allclose(ZTSNR, scheduler.alphas_cumprod.double(), rtol=0, atol=1e-6)
    # a few values, so a wrong rescale cannot hide behind a wrong reference
    assert ZTSNR[500].item() == pytest.approx(0.24102, rel=1e-4)
    assert ZTSNR[998].item() == pytest.approx(1.968e-7, rel=1e-3)


def test_terminal_alpha_bar_is_exactly_zero_and_the_first_is_kept() -> None:
    plain = alphas_cumprod()
    assert ZTSNR[-1].item() == 0.0
    assert ZTSNR[0].item() == pytest.approx(plain[0].item(), abs=1e-15)
    assert bool((ZTSNR[1:] < ZTSNR[:-1]).all())
    assert snr(torch.tensor([999]), ZTSNR).item() == 0.0
    assert snr(torch.tensor([999])).item() == pytest.approx(plain[-1].item() / (1 - plain[-1].item()), rel=1e-6)
    assert torch.equal(training_alphas_cumprod(False), plain)
    copy = training_alphas_cumprod(True)
    copy[0] = 0.5  # a caller's change must not reach the next caller
    assert training_alphas_cumprod(True)[0].item() == pytest.approx(plain[0].item())


def test_rescale_refuses_a_schedule_it_cannot_rescale() -> None:
    with pytest.raises(ScheduleError, match="decrease"):
        rescale_zero_terminal_snr(torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ScheduleError, match="1-D"):
        rescale_zero_terminal_snr(torch.tensor([0.5]))


def test_terminal_step_is_pure_noise_and_its_v_target_is_minus_x0() -> None:
    x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([999, 999])
    assert torch.equal(add_noise(x0, noise, t, ZTSNR), noise)
    assert torch.allclose(v_target(x0, noise, t, ZTSNR), -x0)
    # the standard schedule leaves signal in at t = 999 (sqrt(alpha_bar) ~ 0.068)
    assert not torch.allclose(add_noise(x0, noise, t), noise, atol=1e-2)


# ----- weights at SNR 0 -----
def test_min_snr_weights_are_finite_at_zero_snr() -> None:
    t = torch.tensor([0, 500, 999])
    ratio = ZTSNR / (1 - ZTSNR)
    eps = losses.min_snr_weight(t, 5.0, v_prediction=False, table=ZTSNR)
    v = losses.min_snr_weight(t, 5.0, v_prediction=True, table=ZTSNR)
    assert torch.isfinite(eps).all() and torch.isfinite(v).all()
    assert eps[2].item() == 1.0 and v[2].item() == 0.0  # the limits min(s, g)/s -> 1 and min(s, g)/(s+1) -> 0
    assert eps[0].item() == pytest.approx(5.0 / ratio[0].item(), rel=1e-5)
    assert eps[1].item() == pytest.approx(1.0)  # SNR(500) = 0.318 < 5
    assert v[1].item() == pytest.approx(ratio[500].item() / (ratio[500].item() + 1), rel=1e-5)


def test_debiased_weights_are_finite_at_zero_snr() -> None:
    t = torch.tensor([999])
    assert losses.debiased_estimation_weight(t, v_prediction=True, table=ZTSNR).item() == pytest.approx(1.0)
    eps = losses.debiased_estimation_weight(t, v_prediction=False, table=ZTSNR).item()
    assert eps == pytest.approx(1 / math.sqrt(losses.DEBIASED_SNR_RANGE[0]), rel=1e-5)


def test_loss_at_the_terminal_step_is_finite_with_every_weight_on() -> None:
    settings = StepSettings(family="sdxl", v_prediction=True, zero_terminal_snr=True, min_snr_gamma=5.0,
                            debiased_estimation=True, loss_type="huber", huber_schedule="snr")
    x0, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([999, 998])
    loss = compute_loss(torch.zeros_like(x0), x0, noise, t, torch.ones(2), settings)
    assert torch.isfinite(loss) and loss.item() > 0
    # the v target the loss uses is the rescaled one: at t = 999 a prediction of -x0 is exact
    perfect = v_target(x0, noise, t, ZTSNR)
    assert compute_loss(perfect, x0, noise, t, torch.ones(2), settings).item() == pytest.approx(0.0, abs=1e-7)


# ----- detection -----
@pytest.fixture(scope="module")
def vpred_ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("vpred") / "noob-vpred.safetensors", "sdxl", seed=1,
                            markers=VPRED_ZTSNR)


def test_factory_writes_empty_markers_at_the_top_level(vpred_ckpt) -> None:
    with safe_open(str(vpred_ckpt), "pt") as f:
        assert {"v_pred", "ztsnr"} <= set(f.keys())
        assert f.get_tensor("v_pred").numel() == 0 and f.get_tensor("ztsnr").numel() == 0
    with pytest.raises(ValueError, match="unknown checkpoint markers"):
        build_state_dict("sd1", markers=("vpred",))


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_markers_are_detected(tmp_path, suffix) -> None:
    path = write_checkpoint(tmp_path / f"m{suffix}", "sdxl", markers=VPRED_ZTSNR)
    models = load_checkpoint(path, parts=())
    assert models.v_prediction is True and models.zero_terminal_snr is True
    assert "'v_pred' marker" in models.prediction.reason and "'ztsnr' marker" in models.prediction.reason
    plain = decide_prediction("sdxl", None, set())
    assert plain.v_prediction is False and plain.zero_terminal_snr is False


def test_options_override_the_markers(vpred_ckpt) -> None:
    off = load_checkpoint(vpred_ckpt, parts=(), v_prediction=False, zero_terminal_snr=False)
    assert off.v_prediction is False and off.zero_terminal_snr is False
    assert "zero_terminal_snr = False" in off.prediction.reason
    on = decide_prediction("sdxl", None, set(), override=True, zero_terminal_snr=True)
    assert on.v_prediction is True and on.zero_terminal_snr is True and "set explicitly" in on.reason
    # the markers are independent: a ztsnr marker alone does not make a model v-prediction
    only = decide_prediction("sdxl", None, {"ztsnr"})
    assert only.zero_terminal_snr is True and only.v_prediction is False


# ----- sampling -----
def test_sampling_sigmas_are_finite_with_the_webui_terminal_value() -> None:
    sigmas = model_sigmas(ZTSNR)
    assert torch.isfinite(sigmas).all()
    terminal = math.sqrt((1 - SAMPLING_MIN_ALPHA_BAR) / SAMPLING_MIN_ALPHA_BAR)
    assert sigmas[-1].item() == pytest.approx(terminal, rel=1e-6) and 4518 < terminal < 4520
    unclamped = ((1 - ZTSNR[:-1]) / ZTSNR[:-1]).sqrt().float()
    assert torch.equal(sigmas[:-1], unclamped)
    schedule = discrete_sigmas(10, sigmas)
    assert schedule[0].item() == pytest.approx(terminal, rel=1e-6)
    assert sigma_to_timestep(schedule[:1], sigmas).item() == pytest.approx(999.0, abs=1e-3)


def test_v_denoiser_at_the_terminal_sigma_returns_the_models_x0() -> None:
    """At the last step a v-model's prediction is -x0 (v = sqrt(ab) noise - sqrt(1 - ab) x0); the
    denoiser must give back x0 from a start latent of ~4519 times unit noise."""
    sigmas = model_sigmas(ZTSNR)
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = {}

    def v_model(x_in, t):
        seen["t"], seen["std"] = float(t[0]), float(x_in.std())
        return -x0 * torch.ones_like(x_in)

    denoiser = DiscreteDenoiser(v_model, sigmas, v_prediction=True)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * sigmas[-1]
    out = sample_euler(denoiser, x, torch.tensor([float(sigmas[-1]), 0.0]))
    assert seen["t"] == pytest.approx(999.0, abs=1e-3) and 0.5 < seen["std"] < 1.5
    assert torch.allclose(out, x0, atol=1e-3)


def test_samples_use_the_models_parameterisation(vpred_ckpt) -> None:
    models = load_checkpoint(vpred_ckpt)
    prompt = SamplePrompt("a red cube", width=64, height=64, seed=3, steps=1)

    def render(**override):
        image = generate_sample(models, prompt, "euler", "cpu", torch.float32, **override)
        return torch.tensor(list(image.getdata()), dtype=torch.float32)

    detected = render()
    assert not torch.equal(detected, render(zero_terminal_snr=False))
    assert not torch.equal(detected, render(v_prediction=False))


# ----- metadata -----
def _metadata(tmp_path, v: bool, ztsnr: bool, **options) -> dict[str, str]:
    model = tmp_path / "noob.safetensors"
    model.write_bytes(b"x")
    cfg = TrainConfig(pretrained_model_name_or_path=str(model), train_data_dir=str(tmp_path),
                      output_dir=str(tmp_path), **options)
    summary = {"num_train_images": 1, "num_reg_images": 0, "dataset_dirs": {}, "reg_dataset_dirs": {},
               "tag_frequency": {}, "bucket_info": {}}
    return build_metadata(cfg, family="sdxl", v_prediction=v, zero_terminal_snr=ztsnr, dataset_summary=summary,
                          optimizer_desc="AdamW", session_id=1, training_started_at=0.0, epoch=1, steps=1,
                          num_epochs=1, num_batches_per_epoch=1, base_model_path=str(model),
                          base_model_hashes=None, resolution=(1024, 1024), saved_at=0.0)


def test_metadata_records_the_resolved_parameterisation(tmp_path) -> None:
    # the config leaves both to the markers; the metadata says what the run used
    vpred = _metadata(tmp_path, True, True)
    assert (vpred["ss_v_parameterization"], vpred["ss_zero_terminal_snr"]) == ("True", "True")
    assert vpred["modelspec.prediction_type"] == "v"
    eps = _metadata(tmp_path, False, False, zero_terminal_snr=True)  # whatever the config said, the run's value
    assert (eps["ss_v_parameterization"], eps["ss_zero_terminal_snr"]) == ("False", "False")
    assert eps["modelspec.prediction_type"] == "epsilon"


def test_previews_follow_the_parameterisation_a_lora_records(tmp_path) -> None:
    tensors = {"lora_unet_x.alpha": torch.tensor(1.0)}
    ours, theirs, plain = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors", tmp_path / "old.pt"
    save_file(tensors, str(ours), metadata={"ss_v_parameterization": "True", "ss_zero_terminal_snr": "True"})
    save_file(tensors, str(theirs), metadata={"ss_zero_terminal_snr": "False"})  # sd-scripts writes no v key
    torch.save(tensors, plain)
    assert trained_prediction(ours) == (True, True)
    assert trained_prediction(theirs) == (None, None)
    assert trained_prediction(plain) == (None, None) and trained_prediction(None) == (None, None)


# ----- a run -----
def test_two_step_vpred_ztsnr_run_has_finite_loss_and_true_metadata(vpred_ckpt, tmp_path) -> None:
    data, out = make_dataset(tmp_path, count=2, folder="1_demo"), tmp_path / "out"
    code = main(run_args(vpred_ckpt, data, out, max_train_steps=2, network_train_unet_only=True,
                         min_snr_gamma=5, min_timestep=990, max_timestep=1000))
    assert code == 0
    losses_seen = [e.loss for e in events(out) if e.type == "step"]
    assert len(losses_seen) == 2 and all(math.isfinite(x) for x in losses_seen)
    with safe_open(str(out / "tiny.safetensors"), "pt") as f:
        meta = f.metadata()
    assert (meta["ss_v_parameterization"], meta["ss_zero_terminal_snr"]) == ("True", "True")
    assert meta["modelspec.prediction_type"] == "v" and meta["ss_base_model_version"] == "sdxl_base_v1-0"
