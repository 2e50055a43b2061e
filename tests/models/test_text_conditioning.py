"""Prompt encoding for SD1/SD2 and SDXL: window stitching, clip skip, SDXL context and pooled."""

from __future__ import annotations

import pytest
import torch

from lib_train_tools.models.clip import TINY_CLIP_L, TINY_OPENCLIP_BIGG, CLIPTextModel, TextEncoderConfig
from lib_train_tools.models.text_conditioning import encode_sd, encode_sdxl, sdxl_time_ids, stitch_windows

BOS, EOS = 49406, 49407


def _model(config: TextEncoderConfig, seed: int) -> CLIPTextModel:
    torch.manual_seed(seed)
    return CLIPTextModel(config).eval()


@pytest.fixture(scope="module")
def te1() -> CLIPTextModel:
    return _model(TINY_CLIP_L, 0)


@pytest.fixture(scope="module")
def te2() -> CLIPTextModel:
    return _model(TINY_OPENCLIP_BIGG, 1)


def _window_ids(batch: int, windows: int, seed: int = 0) -> torch.Tensor:
    """Random windows shaped like tokenizer output: BOS, tokens, EOS at a varying position, pad."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, BOS, (batch, windows, 77), generator=generator)
    ids[:, :, 0] = BOS
    for b in range(batch):
        for w in range(windows):
            end = 10 + 20 * w + 7 * b
            ids[b, w, end] = EOS
            ids[b, w, end + 1 :] = 0
    return ids


def test_one_window_equals_plain_encode(te1):
    ids = _window_ids(2, 1)
    with torch.no_grad():
        context = encode_sd(te1, ids)
        plain = te1(ids[:, 0]).last_hidden_state
    assert context.shape == (2, 77, 32)
    assert torch.allclose(context, plain, atol=1e-6)


def test_clip_skip_2_is_normed_penultimate_layer(te1):
    ids = _window_ids(2, 1)
    with torch.no_grad():
        context = encode_sd(te1, ids, clip_skip=2)
        out = te1(ids[:, 0])
        expected = te1.text_model.final_layer_norm(out.hidden_states[-2])
    assert torch.allclose(context, expected, atol=1e-6)
    assert not torch.allclose(context, out.last_hidden_state, atol=1e-3)


def test_three_windows_are_stitched_kohya_style(te1):
    ids = _window_ids(2, 3)
    with torch.no_grad():
        context = encode_sd(te1, ids)
        per_window = [te1(ids[:, w]).last_hidden_state for w in range(3)]
    assert context.shape == (2, 227, 32)
    expected = torch.cat(
        [per_window[0][:, :1], per_window[0][:, 1:76], per_window[1][:, 1:76], per_window[2][:, 1:76],
         per_window[2][:, 76:]],
        dim=1,
    )
    assert torch.allclose(context, expected, atol=1e-5)
    assert encode_sd(te1, _window_ids(1, 2)).shape == (1, 152, 32)


def test_stitch_positions_on_labelled_states():
    states = torch.arange(2 * 77, dtype=torch.float32).reshape(1, 2, 77, 1)
    stitched = stitch_windows(states)[0, :, 0].tolist()
    assert stitched == [0.0, *range(1, 76), *range(78, 153), 153.0]


def test_sdxl_context_and_pooled(te1, te2):
    ids1, ids2 = _window_ids(2, 2, seed=1), _window_ids(2, 2, seed=2)
    with torch.no_grad():
        context, pooled = encode_sdxl(te1, te2, ids1, ids2)
        first1, second1 = te1(ids1[:, 0]), te1(ids1[:, 1])
        first2, second2 = te2(ids2[:, 0]), te2(ids2[:, 1])
    assert context.shape == (2, 152, 32 + 96)
    assert pooled.shape == (2, 64)
    expected1 = torch.cat([first1.hidden_states[11][:, :76], second1.hidden_states[11][:, 1:]], dim=1)
    expected2 = torch.cat([first2.hidden_states[31][:, :76], second2.hidden_states[31][:, 1:]], dim=1)
    assert torch.allclose(context[..., :32], expected1, atol=1e-5)
    assert torch.allclose(context[..., 32:], expected2, atol=1e-5)
    assert torch.allclose(pooled, first2.pooled, atol=1e-5)
    assert not torch.allclose(pooled, second2.pooled, atol=1e-3)


def test_bad_inputs_raise(te1, te2):
    with pytest.raises(ValueError, match=r"\[batch, windows, 77\], got \(2, 77\)"):
        encode_sd(te1, torch.zeros(2, 77, dtype=torch.long))
    with pytest.raises(ValueError, match="clip_skip 13 must be between 1 and 12"):
        encode_sd(te1, _window_ids(1, 1), clip_skip=13)
    with pytest.raises(ValueError, match="same batch and windows"):
        encode_sdxl(te1, te2, _window_ids(1, 1), _window_ids(1, 2))
    with pytest.raises(ValueError, match="te2 has no text_projection"):
        encode_sdxl(te1, te1, _window_ids(1, 1), _window_ids(1, 1))


def test_sdxl_time_ids_order_and_batching():
    single = sdxl_time_ids((1024, 768), (0, 16), (896, 1152))
    assert single.tolist() == [[1024, 768, 0, 16, 896, 1152]]
    assert single.dtype == torch.long
    batched = sdxl_time_ids([(512, 512), (640, 480)], (0, 0), torch.tensor([[1024, 1024], [1152, 896]]))
    assert batched.tolist() == [[512, 512, 0, 0, 1024, 1024], [640, 480, 0, 0, 1152, 896]]
    with pytest.raises(ValueError, match="different batch sizes"):
        sdxl_time_ids([(1, 2), (3, 4)], [(0, 0)] * 3, (5, 6))
    with pytest.raises(ValueError, match="crop_top_left must be a pair"):
        sdxl_time_ids((1, 2), (0, 0, 0), (5, 6))


# ----------------------------------------------------------------------------- against diffusers' pipelines
# The same tiny weights in transformers' CLIP and diffusers' U-Net, run through diffusers' own
# StableDiffusion(XL)Pipeline.encode_prompt and _get_add_time_ids: clip skip, SDXL's context, pooled
# output and size conditioning must come out the same as ours, and so must the U-Net on top of them.

PIPELINE_PROMPTS = ["1girl, blonde hair, full body, on chair", "a photo of an astronaut riding a horse on mars"]


@pytest.fixture(scope="module")
def diffusers():
    return pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def hf_vocab(tmp_path_factory):
    pytest.importorskip("transformers")
    from tests.models.test_tokenizer import _write_hf_vocab

    return _write_hf_vocab(tmp_path_factory.mktemp("pipeline_vocab"))


def _hf_tokenizer(hf_vocab, pad: str):
    from transformers import CLIPTokenizer

    return CLIPTokenizer(str(hf_vocab[0]), str(hf_vocab[1]), pad_token=pad, model_max_length=77)


def _seeded(config: TextEncoderConfig, seed: int) -> CLIPTextModel:
    from tests.models.test_clip import _seeded_model

    return _seeded_model(config, seed)


def _diffusers_unet(diffusers, config, seed: int):
    from lib_train_tools.models.unet import UNetModel
    from tests.models.test_unet import _randomize, _twin

    ours = _randomize(UNetModel(config).eval(), seed=seed)
    return ours, _twin(diffusers, ours)


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_sd_context_with_clip_skip_matches_diffusers_pipeline(diffusers, hf_vocab, family):
    from lib_train_tools.models.clip import TINY_OPENCLIP_H
    from lib_train_tools.models.tokenizer import CLIP_L_PAD_TOKEN_ID, OPEN_CLIP_PAD_TOKEN_ID, ClipTokenizer
    from lib_train_tools.models.unet import TINY_SD1_UNET, TINY_SD2_UNET
    from tests.models.test_clip import _hf_twin

    config, pad_id, pad, unet_config = {
        "sd1": (TINY_CLIP_L, CLIP_L_PAD_TOKEN_ID, "<|endoftext|>", TINY_SD1_UNET),
        "sd2": (TINY_OPENCLIP_H, OPEN_CLIP_PAD_TOKEN_ID, "!", TINY_SD2_UNET),
    }[family]
    te = _seeded(config, 3)
    _, unet_twin = _diffusers_unet(diffusers, unet_config, seed=4)
    pipe = diffusers.StableDiffusionPipeline(
        vae=diffusers.AutoencoderKL(), text_encoder=_hf_twin(config, pad_id, False, te),
        tokenizer=_hf_tokenizer(hf_vocab, pad), unet=unet_twin, scheduler=diffusers.DDIMScheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    ids = ClipTokenizer(pad_id)(PIPELINE_PROMPTS)
    with torch.no_grad():
        last = encode_sd(te, ids)
        for clip_skip in (1, 2, 3):
            # diffusers counts skipped layers (its clip_skip=1 is the WebUI's "Clip skip 2")
            want, _ = pipe.encode_prompt(PIPELINE_PROMPTS, "cpu", 1, False,
                                         clip_skip=None if clip_skip == 1 else clip_skip - 1)
            got = encode_sd(te, ids, clip_skip=clip_skip)
            assert got.shape == want.shape == (2, 77, config.hidden_size)
            assert (got - want).abs().max() <= 1e-4, f"clip skip {clip_skip}"
            assert clip_skip == 1 or (got - last).abs().max() > 1e-2  # another layer really was used


def test_sdxl_context_pooled_size_ids_and_unet_match_diffusers_pipeline(diffusers, hf_vocab):
    from lib_train_tools.models.tokenizer import CLIP_L_PAD_TOKEN_ID, OPEN_CLIP_PAD_TOKEN_ID, ClipTokenizer
    from lib_train_tools.models.unet import TINY_SDXL_UNET, sdxl_size_embedding
    from tests.models.test_clip import _hf_twin

    te1, te2 = _seeded(TINY_CLIP_L, 5), _seeded(TINY_OPENCLIP_BIGG, 6)
    unet, unet_twin = _diffusers_unet(diffusers, TINY_SDXL_UNET, seed=7)
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=diffusers.AutoencoderKL(), text_encoder=_hf_twin(TINY_CLIP_L, CLIP_L_PAD_TOKEN_ID, False, te1),
        text_encoder_2=_hf_twin(TINY_OPENCLIP_BIGG, OPEN_CLIP_PAD_TOKEN_ID, True, te2),
        tokenizer=_hf_tokenizer(hf_vocab, "<|endoftext|>"), tokenizer_2=_hf_tokenizer(hf_vocab, "!"),
        unet=unet_twin, scheduler=diffusers.EulerDiscreteScheduler(), add_watermarker=False,
    )
    original, crop, target = (1024, 768), (16, 0), (896, 1152)
    with torch.no_grad():
        want_context, _, want_pooled, _ = pipe.encode_prompt(PIPELINE_PROMPTS, device="cpu",
                                                             do_classifier_free_guidance=False)
        want_ids = pipe._get_add_time_ids(original, crop, target, dtype=torch.float32,
                                          text_encoder_projection_dim=TINY_OPENCLIP_BIGG.projection_dim)
        ids1 = ClipTokenizer(CLIP_L_PAD_TOKEN_ID)(PIPELINE_PROMPTS)
        ids2 = ClipTokenizer(OPEN_CLIP_PAD_TOKEN_ID)(PIPELINE_PROMPTS)
        context, pooled = encode_sdxl(te1, te2, ids1, ids2)
        time_ids = sdxl_time_ids(original, crop, target).expand(2, 6)
        assert context.shape == want_context.shape == (2, 77, 32 + 96)
        assert (context - want_context).abs().max() <= 1e-4
        assert pooled.shape == want_pooled.shape == (2, 64)
        assert (pooled - want_pooled).abs().max() <= 1e-4
        assert time_ids.tolist() == want_ids.expand(2, 6).tolist()

        gen = torch.Generator().manual_seed(8)
        x = torch.randn(2, 4, 16, 16, generator=gen)
        t = torch.tensor([999, 250])
        got = unet(x, t, context, torch.cat([pooled, sdxl_size_embedding(time_ids)], dim=1))
        want = unet_twin(x, t, encoder_hidden_states=want_context,
                         added_cond_kwargs={"text_embeds": want_pooled, "time_ids": want_ids.expand(2, 6)}).sample
    assert want.std() > 0.05
    assert (got - want).abs().max() <= 1e-4
