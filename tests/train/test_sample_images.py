"""Tests for sample images: tiny SD1/SDXL checkpoints render 64x64 PNGs with readable settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lib_train_tools.models.checkpoint_factory import write_checkpoint
from lib_train_tools.models.loader import load_checkpoint
from lib_train_tools.train.sample_images import (
    SampleImageError, generate_sample, infotext, resolve_prompt, save_sample,
)
from lib_train_tools.train.sample_prompts import SamplePrompt


@pytest.fixture(scope="module", params=["sd1", "sdxl"])
def models(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / f"{request.param}.safetensors"
    write_checkpoint(path, request.param)
    return load_checkpoint(path)


def _render(models, seed: int, sampler: str = "euler_a", **changes) -> Image.Image:
    prompt = SamplePrompt("a red cube", negative_prompt="blurry", width=64, height=64, seed=seed, steps=3, **changes)
    return generate_sample(models, prompt, sampler, "cpu", torch.float32, clip_skip=1, max_token_length_windows=1)


def test_png_written_with_settings_and_seed_reproducible(models, tmp_path) -> None:
    image = _render(models, seed=1)
    path = save_sample(image, tmp_path / "sample" / "run_000003_00.png", SamplePrompt("ignored"))
    assert sorted(p.name for p in path.parent.iterdir()) == ["run_000003_00.png"]
    with Image.open(path) as saved:
        assert saved.size == (64, 64) and saved.mode == "RGB"
        assert saved.text["parameters"] == ("a red cube\nNegative prompt: blurry\n"
                                            "Steps: 3, Sampler: Euler a, CFG scale: 7.5, Seed: 1, Size: 64x64")
        pixels = np.asarray(saved)
    assert pixels.std() > 1.0      # a real picture, not a flat (NaN-clamped) one
    assert np.array_equal(pixels, np.asarray(_render(models, seed=1)))
    assert not np.array_equal(pixels, np.asarray(_render(models, seed=2)))


def test_prompt_sampler_wins_and_models_keep_their_mode(models) -> None:
    models.unet.train()
    image = generate_sample(models, SamplePrompt("x", width=64, height=64, seed=4, steps=2, sampler="ddim"),
                            "euler_a", "cpu", torch.float32)
    assert "Sampler: DDIM" in image.info["parameters"] and "Seed: 4" in image.info["parameters"]
    assert models.unet.training and not models.vae.training
    models.unet.eval()


def test_size_is_rounded_for_the_unet(models) -> None:
    image = generate_sample(models, SamplePrompt("x", width=100, height=72, seed=0, steps=1), "ddim", "cpu",
                            torch.float32)
    expected = {"sd1": (64, 64), "sdxl": (96, 64)}[models.family]   # multiples of 64 and 32
    assert image.size == expected
    assert f"Size: {image.size[0]}x{image.size[1]}" in image.info["parameters"]


def test_infotext_resolve_prompt_and_missing_parts() -> None:
    plain = SamplePrompt("cat", seed=7, steps=20, cfg_scale=5.0, sampler="ddim", width=512, height=768)
    assert infotext(plain) == "cat\nSteps: 20, Sampler: DDIM, CFG scale: 5, Seed: 7, Size: 512x768"
    resolved, warning = resolve_prompt(SamplePrompt("cat"), "k_euler_a")
    assert resolved.sampler == "euler_a" and warning is None and 0 <= resolved.seed < 2 ** 32
    fallback, warning = resolve_prompt(SamplePrompt("cat", seed=3, sampler="pndm"), "ddim")
    assert fallback.seed == 3 and "pndm" in warning
    with pytest.raises(SampleImageError, match="need the U-Net"):
        generate_sample(_NoParts(), SamplePrompt("cat"), "ddim", "cpu", torch.float32)


class _NoParts:
    path = "missing.safetensors"
    unet = vae = None
    text_encoders: list = []
