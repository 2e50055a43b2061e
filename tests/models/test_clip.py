"""CLIP text encoders: parity with transformers, real key layouts and counts, OpenCLIP conversion."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from lib_train_tools.models.clip import (
    CLIP_L,
    OPENCLIP_BIGG,
    OPENCLIP_H_SD2,
    TINY_CLIP_L,
    TINY_OPENCLIP_BIGG,
    TINY_OPENCLIP_H,
    CLIPTextModel,
    TextEncoderConfig,
)
from lib_train_tools.models.clip_layout import (
    ClipLayoutError,
    from_hf_layout,
    from_open_clip_layout,
    to_hf_layout,
    to_open_clip_layout,
)


def _import_hf_clip():
    """transformers' CLIP pulls in torchvision when installed; hide a broken one during the import."""
    hide = "torchvision" not in sys.modules
    if hide:
        sys.modules["torchvision"] = None  # makes `import torchvision` fail fast, so transformers skips it
    try:
        from transformers import CLIPTextConfig, CLIPTextModel as HFTextModel, CLIPTextModelWithProjection
    except ImportError:
        return None
    finally:
        if hide:
            sys.modules.pop("torchvision", None)
    return CLIPTextConfig, HFTextModel, CLIPTextModelWithProjection


HF_CLIP = _import_hf_clip()
needs_hf = pytest.mark.skipif(HF_CLIP is None, reason="transformers is not installed")

BOS, EOS = 49406, 49407


def _seeded_model(config: TextEncoderConfig, seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed)
    model = CLIPTextModel(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                # non-trivial norms so a swapped weight/bias or a skipped norm shows up
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def _prompt_ids(pad: int, lengths: tuple[int, ...] = (10, 75, 0), seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for length in lengths:
        tokens = torch.randint(1, BOS, (length,), generator=generator).tolist()
        row = [BOS, *tokens, EOS]
        rows.append(row + [pad] * (77 - len(row)))
    return torch.tensor(rows)


def _hf_twin(config: TextEncoderConfig, pad: int, with_projection: bool, ours: CLIPTextModel) -> nn.Module:
    clip_text_config, hf_text_model, hf_with_projection = HF_CLIP
    hf_config = clip_text_config(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        projection_dim=max(config.projection_dim, 1),
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        hidden_act=config.activation,
        layer_norm_eps=config.layer_norm_eps,
        bos_token_id=BOS,
        eos_token_id=EOS,  # not 2: transformers then pools at the first EOS, not at argmax
        pad_token_id=pad,
        attn_implementation="eager",
    )
    hf = (hf_with_projection if with_projection else hf_text_model)(hf_config).eval()
    result = hf.load_state_dict(ours.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return hf


@needs_hf
@pytest.mark.parametrize(
    "config, pad",
    [(TINY_CLIP_L, EOS), (TINY_OPENCLIP_H, 0), (TINY_OPENCLIP_BIGG, 0)],
    ids=["clip_l_quick_gelu", "openclip_h_gelu", "openclip_bigg_projection"],
)
def test_matches_transformers(config: TextEncoderConfig, pad: int):
    ours = _seeded_model(config)
    with_projection = config.projection_dim > 0
    hf = _hf_twin(config, pad, with_projection, ours)
    ids = _prompt_ids(pad)
    with torch.no_grad():
        mine = ours(ids)
        theirs = hf(input_ids=ids, output_hidden_states=True)
    assert len(mine.hidden_states) == config.num_layers + 1 == len(theirs.hidden_states)
    for index, (a, b) in enumerate(zip(mine.hidden_states, theirs.hidden_states)):
        assert (a - b).abs().max() <= 1e-4, f"hidden state {index}"
    assert (mine.last_hidden_state - theirs.last_hidden_state).abs().max() <= 1e-4
    their_pooled = theirs.text_embeds if with_projection else theirs.pooler_output
    assert mine.pooled.shape == (3, config.projection_dim or config.hidden_size)
    assert (mine.pooled - their_pooled).abs().max() <= 1e-4


def test_pooled_is_first_eos_state():
    model = _seeded_model(TINY_CLIP_L)
    ids = _prompt_ids(EOS, lengths=(5,))
    with torch.no_grad():
        out = model(ids)
    assert torch.equal(out.pooled[0], out.last_hidden_state[0, 6])
    assert not torch.allclose(out.pooled[0], out.last_hidden_state[0, 7])


def test_gradient_checkpointing_gives_same_values_and_grads():
    ids = _prompt_ids(EOS, lengths=(8, 3))
    results = []
    for use_checkpointing in (False, True):
        model = _seeded_model(TINY_CLIP_L).train()
        model.gradient_checkpointing = use_checkpointing
        out = model(ids)
        out.last_hidden_state.square().mean().backward()
        grad = model.text_model.encoder.layers[3].self_attn.q_proj.weight.grad
        results.append((out.last_hidden_state.detach(), grad.clone()))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)
    assert results[0][1].abs().sum() > 0


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        TextEncoderConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="activation='relu'"):
        TextEncoderConfig(activation="relu")
    model = CLIPTextModel(TINY_CLIP_L)
    with pytest.raises(ValueError, match="78 tokens is longer than the 77"):
        model(torch.zeros(1, 78, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[batch, seq\]"):
        model(torch.zeros(1, 1, 77, dtype=torch.long))


def _meta_model(config: TextEncoderConfig) -> CLIPTextModel:
    with torch.device("meta"):
        return CLIPTextModel(config)


def test_clip_l_layout_matches_sd15_file():
    sd = _meta_model(CLIP_L).state_dict()
    params = sum(t.numel() for t in sd.values())
    print(f"CLIP-L: {len(sd)} tensors in our state dict, {len(sd) + 1} in an SD1.5 file (+ position_ids); {params:,}")
    assert len(sd) == 196 and len(sd) + 1 == 197
    assert params == 123_060_480
    assert not any("position_ids" in key for key in sd)
    assert sd["text_model.embeddings.position_embedding.weight"].shape == (77, 768)
    assert sd["text_model.encoder.layers.11.mlp.fc1.weight"].shape == (3072, 768)
    assert "text_projection.weight" not in sd


@pytest.mark.parametrize(
    "config, prefix, expected",
    [(CLIP_L, "lora_te", 72), (OPENCLIP_H_SD2, "lora_te", 138), (OPENCLIP_BIGG, "lora_te2", 192)],
)
def test_lora_target_names(config: TextEncoderConfig, prefix: str, expected: int):
    names = [
        f"{prefix}_{name.replace('.', '_')}"
        for name, module in _meta_model(config).named_modules()
        if isinstance(module, nn.Linear) and ".layers." in name
    ]
    assert len(names) == expected
    assert f"{prefix}_text_model_encoder_layers_0_self_attn_q_proj" in names
    assert f"{prefix}_text_model_encoder_layers_{config.num_layers - 1}_mlp_fc2" in names


def test_bigg_open_clip_layout_counts():
    ours = _meta_model(OPENCLIP_BIGG).state_dict()
    open_clip = to_open_clip_layout(ours)
    params = sum(t.numel() for t in open_clip.values())
    print(f"bigG: {len(open_clip)} open_clip keys (+ logit_scale = {len(open_clip) + 1}); {params:,} parameters, "
          f"{params + 1:,} with logit_scale")
    assert len(open_clip) == 32 * 12 + 5 == 389
    assert params == sum(t.numel() for t in ours.values()) == 694_659_840
    assert open_clip["transformer.resblocks.31.attn.in_proj_weight"].shape == (3840, 1280)
    assert open_clip["transformer.resblocks.31.attn.in_proj_bias"].shape == (3840,)
    assert open_clip["positional_embedding"].shape == (77, 1280)
    assert open_clip["text_projection"].shape == (1280, 1280)


def test_open_clip_round_trip_and_transposed_projection():
    sd = _seeded_model(TINY_OPENCLIP_BIGG).state_dict()
    open_clip = to_open_clip_layout(sd)
    assert open_clip["text_projection"].shape == (96, 64)
    assert torch.equal(open_clip["text_projection"], sd["text_projection.weight"].t())
    prefix = "text_model.encoder.layers.4.self_attn."
    fused = torch.cat([sd[prefix + f"{n}_proj.weight"] for n in "qkv"])
    assert torch.equal(open_clip["transformer.resblocks.4.attn.in_proj_weight"], fused)
    back = from_open_clip_layout({**open_clip, "logit_scale": torch.tensor(4.6), "attn_mask": torch.ones(77, 77)})
    assert back.keys() == sd.keys()
    assert all(torch.equal(back[key], sd[key]) for key in sd)


def test_fused_in_proj_order_matches_torch_multihead_attention():
    """open_clip runs its blocks through nn.MultiheadAttention; our q/k/v split must agree with it."""
    model = _seeded_model(TINY_CLIP_L)
    open_clip = to_open_clip_layout(model.state_dict())
    attention = nn.MultiheadAttention(32, TINY_CLIP_L.num_heads, batch_first=True)
    attention.load_state_dict({
        "in_proj_weight": open_clip["transformer.resblocks.0.attn.in_proj_weight"],
        "in_proj_bias": open_clip["transformer.resblocks.0.attn.in_proj_bias"],
        "out_proj.weight": open_clip["transformer.resblocks.0.attn.out_proj.weight"],
        "out_proj.bias": open_clip["transformer.resblocks.0.attn.out_proj.bias"],
    })
    x = torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(3))
    causal = torch.triu(torch.full((7, 7), float("-inf")), diagonal=1)
    with torch.no_grad():
        expected, _ = attention(x, x, x, attn_mask=causal, need_weights=False)
        actual = model.text_model.encoder.layers[0].self_attn(x)
    assert (expected - actual).abs().max() <= 1e-5


def test_sd2_file_with_24_blocks_loads_as_23_layers():
    full = _seeded_model(TextEncoderConfig(hidden_size=64, num_layers=24, num_heads=1, intermediate_size=128,
                                           activation="gelu"))
    open_clip = {**to_open_clip_layout(full.state_dict()), "logit_scale": torch.tensor(4.6)}
    converted = from_open_clip_layout(open_clip, num_layers=23)
    assert not any(key.startswith("text_model.encoder.layers.23.") for key in converted)
    model = CLIPTextModel(TINY_OPENCLIP_H)
    model.load_state_dict(converted, strict=True)
    ids = _prompt_ids(0, lengths=(6,))
    with torch.no_grad():
        assert torch.allclose(model(ids).hidden_states[23], full(ids).hidden_states[23], atol=1e-6)


def test_hf_layout_accepts_old_sd1_keys_and_drops_position_ids():
    sd = _seeded_model(TINY_CLIP_L).state_dict()
    old_style = {key.removeprefix("text_model."): value for key, value in sd.items()}
    old_style["embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    converted = from_hf_layout(old_style)
    assert converted.keys() == sd.keys()
    CLIPTextModel(TINY_CLIP_L).load_state_dict(converted, strict=True)
    assert to_hf_layout(converted).keys() == sd.keys()


def test_layout_errors_name_the_key():
    with pytest.raises(ClipLayoutError, match="'cond_stage_model.transformer.encoder.x'"):
        from_hf_layout({"cond_stage_model.transformer.encoder.x": torch.zeros(1)})
    with pytest.raises(ClipLayoutError, match="'transformer.resblocks.0.attn.weird'"):
        from_open_clip_layout({"transformer.resblocks.0.attn.weird": torch.zeros(1)})
    with pytest.raises(ClipLayoutError, match="does not split in 3"):
        from_open_clip_layout({"transformer.resblocks.0.attn.in_proj_bias": torch.zeros(4)})
    sd = CLIPTextModel(TINY_CLIP_L).state_dict()
    del sd["text_model.encoder.layers.2.self_attn.k_proj.weight"]
    with pytest.raises(ClipLayoutError, match=r"layers.2.self_attn.*weight missing for k_proj"):
        to_open_clip_layout(sd)
    with pytest.raises(ClipLayoutError, match="'logit_scale'"):
        to_hf_layout({"logit_scale": torch.zeros(())})
