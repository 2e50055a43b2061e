"""Sampling a remembered VAE posterior draws exactly what re-encoding the image would draw."""

from pathlib import Path

import torch

from lib_train_tools.models.vae import TINY_VAE, AutoencoderKL
from lib_train_tools.train.latent_moments import LatentMoments


def test_remembered_moments_match_encoding_every_time():
    torch.manual_seed(0)
    vae = AutoencoderKL(TINY_VAE).eval()
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    keys = [(Path("a.png"), False, (3, 64, 64)), (Path("b.png"), True, (3, 64, 64))]
    moments = LatentMoments()
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
    moments = LatentMoments()
    pixels = torch.zeros(2, 3, 64, 64)
    moments.sample(vae, pixels, [("a", False, (3, 64, 64)), ("b", False, (3, 64, 64))], torch.Generator(), torch.float32)
    moments.sample(vae, pixels, [("a", False, (3, 64, 64)), ("c", False, (3, 64, 64))], torch.Generator(), torch.float32)
    assert calls == [2, 1]
