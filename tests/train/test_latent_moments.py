"""Sampling a remembered VAE posterior draws exactly what re-encoding the image would draw."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from lib_train_tools.models.vae import TINY_VAE, AutoencoderKL
from lib_train_tools.train.data import BucketChoice, LatentJob, prepare_image
from lib_train_tools.train.latent_moments import LatentMoments, image_key


def test_remembered_moments_match_encoding_every_time():
    torch.manual_seed(0)
    vae = AutoencoderKL(TINY_VAE).eval()
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    keys = [(Path("a.png"), False, (3, 64, 64)), (Path("b.png"), True, (3, 64, 64))]
    moments = LatentMoments(vae.config.scaling_factor)
    for seed in (1, 2, 3):  # the first call encodes, later calls only sample
        expected = vae.encode_latents(pixels, generator=torch.Generator().manual_seed(seed))
        got = moments.sample(vae, pixels, keys, torch.Generator().manual_seed(seed), torch.float32)
        assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    assert len(moments) == 2


def test_only_unseen_images_are_encoded():
    vae = AutoencoderKL(TINY_VAE).eval()
    calls = []
    original = vae.encode
    vae.encode = lambda x: calls.append(x.shape[0]) or original(x)
    moments = LatentMoments(vae.config.scaling_factor)
    pixels, shape = torch.zeros(2, 3, 64, 64), (3, 64, 64)
    moments.sample(vae, pixels, [("a", False, shape), ("b", False, shape)], torch.Generator(), torch.float32)
    moments.sample(vae, pixels, [("a", False, shape), ("c", False, shape)], torch.Generator(), torch.float32)
    assert calls == [2, 1]


def _image(tmp_path: Path, name: str, colour) -> Path:
    path = tmp_path / name
    Image.new("RGB", (64, 64), colour).save(path)
    return path


def test_fill_encodes_every_image_and_mirror_before_training_so_no_vae_is_needed_later(tmp_path):
    torch.manual_seed(0)
    vae = AutoencoderKL(TINY_VAE).eval()
    choice = BucketChoice(bucket=(64, 64), resized=(64, 64))
    jobs = [LatentJob(_image(tmp_path, "a.png", (200, 10, 10)), choice, True),
            LatentJob(_image(tmp_path, "b.png", (10, 10, 200)), choice, False)]
    moments = LatentMoments(vae.config.scaling_factor)
    assert moments.fill(vae, jobs, torch.float32, torch.device("cpu")) == 3  # a, mirrored a, b
    assert moments.fill(vae, jobs, torch.float32, torch.device("cpu")) == 0
    flipped = prepare_image(jobs[0].path, choice, True).pixels
    key = image_key(jobs[0].path, True, flipped)
    expected = vae.encode_latents(flipped[None], generator=torch.Generator().manual_seed(5))
    got = moments.sample(None, flipped[None], [key], torch.Generator().manual_seed(5), torch.float32)
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    with pytest.raises(RuntimeError, match="released"):
        moments.sample(None, flipped[None], [(Path("other.png"), False, (3, 64, 64))], torch.Generator(),
                       torch.float32)
