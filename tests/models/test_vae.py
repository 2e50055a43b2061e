"""Tests for the LDM-named VAE: parity with diffusers, checkpoint layout, latent scaling and input errors."""
from __future__ import annotations

import sys
from types import ModuleType

import pytest
import torch

from lib_train_tools.models.vae import (
    SD_VAE,
    SDXL_VAE,
    TINY_SDXL_VAE,
    TINY_VAE,
    AutoencoderKL,
    DiagonalGaussian,
    VAEConfig,
    VAEInputError,
)

_ATTN_PROJECTIONS = ("q", "k", "v", "proj_out")


def _seeded_vae(config: VAEConfig = TINY_VAE, seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    vae = AutoencoderKL(config).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in vae.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return vae


def _image(size: int = 64, seed: int = 7) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=gen) * 2 - 1


@pytest.fixture
def diffusers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The installed torchvision does not match torch and fails on import; transformers (pulled in by
    # diffusers) probes it once at first import, so hide it then to keep the reference model importable.
    if "transformers" not in sys.modules:
        monkeypatch.setitem(sys.modules, "torchvision", None)
    return pytest.importorskip("diffusers")


def _diffusers_twin(diffusers: ModuleType, vae: AutoencoderKL) -> torch.nn.Module:
    autoencoder_kl = diffusers.AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    levels = len(vae.config.channel_mult)
    down_types = ("DownEncoderBlock2D",) * levels
    up_types = ("UpDecoderBlock2D",) * levels
    twin = autoencoder_kl(
        in_channels=vae.config.in_channels,
        out_channels=vae.config.out_channels,
        down_block_types=down_types,
        up_block_types=up_types,
        block_out_channels=tuple(vae.config.base_channels * m for m in vae.config.channel_mult),
        layers_per_block=vae.config.num_res_blocks,
        latent_channels=vae.config.latent_channels,
        norm_num_groups=vae.config.norm_groups,
        scaling_factor=vae.config.scaling_factor,
    ).eval()
    checkpoint = {f"first_stage_model.{k}": v for k, v in vae.state_dict().items()}
    converted = convert_ldm_vae_checkpoint(
        checkpoint, {"down_block_types": down_types, "up_block_types": up_types}
    )
    twin.load_state_dict(converted, strict=True)
    return twin


def test_encode_and_decode_match_diffusers(diffusers: ModuleType) -> None:
    vae = _seeded_vae()
    twin = _diffusers_twin(diffusers, vae)
    x = _image()
    with torch.no_grad():
        ours = vae.encode(x)
        theirs = twin.encode(x).latent_dist
        z = ours.mean
        decoded_ours = vae.decode(z)
        decoded_theirs = twin.decode(z).sample
    assert ours.mean.shape == (1, 4, 8, 8)
    assert ours.mean.abs().max() > 1e-2 and decoded_ours.abs().max() > 1e-2
    assert (ours.mean - theirs.mean).abs().max() <= 1e-4
    assert (ours.logvar - theirs.logvar).abs().max() <= 1e-4
    assert decoded_ours.shape == (1, 3, 64, 64)
    assert (decoded_ours - decoded_theirs).abs().max() <= 1e-4


def test_linear_shaped_attention_weights_load_strictly_with_same_outputs() -> None:
    vae = _seeded_vae()
    flat = {}
    for key, tensor in vae.state_dict().items():
        name = key.rsplit(".", 2)
        is_attn_weight = ".mid.attn_1." in key and name[-2] in _ATTN_PROJECTIONS and name[-1] == "weight"
        flat[key] = tensor.flatten(1).clone() if is_attn_weight else tensor.clone()
    assert sum(t.ndim == 2 for t in flat.values()) == 8

    reloaded = AutoencoderKL(TINY_VAE).eval()
    reloaded.load_state_dict(flat, strict=True)
    assert reloaded.state_dict()["decoder.mid.attn_1.proj_out.weight"].shape == (128, 128, 1, 1)
    x = _image()
    with torch.no_grad():
        assert torch.equal(reloaded.encode(x).mean, vae.encode(x).mean)
        z = vae.encode(x).mean
        assert torch.equal(reloaded.decode(z), vae.decode(z))


def test_sd_layout_on_meta_device_matches_checkpoint() -> None:
    with torch.device("meta"):
        vae = AutoencoderKL(SD_VAE)
    state = vae.state_dict()
    n_params = sum(p.numel() for p in vae.parameters())
    print(f"SD VAE: {len(state)} tensors, {n_params:,} parameters")
    assert len(state) == 248
    assert n_params == 83_653_863
    expected = {
        "encoder.down.0.block.0.conv1.weight": (128, 128, 3, 3),
        "decoder.up.3.block.0.conv1.weight": (512, 512, 3, 3),
        "quant_conv.weight": (8, 8, 1, 1),
        "post_quant_conv.weight": (4, 4, 1, 1),
        "encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "encoder.conv_out.weight": (8, 512, 3, 3),
        "encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
        "decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
        "decoder.up.1.upsample.conv.weight": (256, 256, 3, 3),
        "encoder.down.2.downsample.conv.weight": (512, 512, 3, 3),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert "encoder.down.3.downsample.conv.weight" not in state
    assert "decoder.up.0.upsample.conv.weight" not in state
    assert "decoder.up.0.block.2.conv2.weight" in state


def test_sdxl_preset_differs_only_in_scaling() -> None:
    assert SDXL_VAE.scaling_factor == 0.13025 and SD_VAE.scaling_factor == 0.18215
    assert TINY_SDXL_VAE.scaling_factor == 0.13025 and TINY_VAE.scaling_factor == 0.18215
    assert TINY_VAE.base_channels == TINY_SDXL_VAE.base_channels == 32
    assert SDXL_VAE.base_channels == SD_VAE.base_channels == 128


@pytest.mark.parametrize("config", [TINY_VAE, TINY_SDXL_VAE])
def test_round_trip_shapes_and_scaling(config: VAEConfig) -> None:
    vae = _seeded_vae(config)
    x = _image()
    with torch.no_grad():
        latents = vae.encode_latents(x, sample=False)
        assert latents.shape == (1, 4, 8, 8)
        torch.testing.assert_close(latents, vae.encode(x).mean * config.scaling_factor)
        image = vae.decode_latents(latents)
        assert image.shape == (1, 3, 64, 64)
        torch.testing.assert_close(image, vae.decode(latents / config.scaling_factor))


def test_sampling_uses_generator_and_std() -> None:
    vae = _seeded_vae()
    x = _image()
    with torch.no_grad():
        dist = vae.encode(x)
        first = vae.encode_latents(x, generator=torch.Generator().manual_seed(3))
        again = vae.encode_latents(x, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    torch.testing.assert_close(first, (dist.mean + dist.std * noise) * TINY_VAE.scaling_factor)
    assert not torch.allclose(first, dist.mode() * TINY_VAE.scaling_factor)


def test_logvar_is_clamped_like_ldm() -> None:
    moments = torch.tensor([1.0, -2.0, 100.0, -100.0]).reshape(1, 4, 1, 1)
    dist = DiagonalGaussian(moments)
    assert dist.mean.flatten().tolist() == [1.0, -2.0]
    assert dist.logvar.flatten().tolist() == [20.0, -30.0]
    torch.testing.assert_close(dist.std, torch.exp(0.5 * dist.logvar))


def test_bad_inputs_raise_clear_errors() -> None:
    vae = AutoencoderKL(TINY_VAE)
    with pytest.raises(VAEInputError, match=r"image batch.*3 channels.*\(1, 4, 16, 16\)"):
        vae.encode(torch.zeros(1, 4, 16, 16))
    with pytest.raises(VAEInputError, match=r"latent batch.*4 channels.*\(3, 2, 2\)"):
        vae.decode(torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="divisible by norm_groups 32"):
        VAEConfig(base_channels=48)
