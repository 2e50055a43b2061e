"""Which modules get a LoRA and what kohya names/shapes they have (real-size models on the meta device)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lib_train_tools.models.unet import SD1_UNET, SDXL_UNET
from lib_train_tools.network import (
    KohyaNameError, NetworkError, create_network, ldm_to_diffusers_path, unet_lora_name,
)

from .models import build_models

DIM, ALPHA, CONV_DIM, CONV_ALPHA = 4, 2.0, 8, 3.0


def _network(family: str, conv: bool, size: str = "real", **kw):
    unet, tes = build_models(family, size)
    return create_network(unet, tes, family, DIM, ALPHA, conv_dim=CONV_DIM if conv else None,
                          conv_alpha=CONV_ALPHA if conv else None, **kw)


def _shapes(network) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in network.state_dict().items()}


@pytest.mark.parametrize("family, conv, expected", [
    ("sd1", False, {"lora_unet": 192, "lora_te": 72}),
    ("sd1", True, {"lora_unet": 278, "lora_te": 72}),
    ("sd2", False, {"lora_unet": 192, "lora_te": 138}),
    ("sdxl", False, {"lora_unet": 722, "lora_te1": 72, "lora_te2": 192}),
    ("sdxl", True, {"lora_unet": 788, "lora_te1": 72, "lora_te2": 192}),
])
def test_module_counts_match_kohya(family: str, conv: bool, expected: dict[str, int]) -> None:
    network = _network(family, conv)
    assert network.module_counts() == expected
    assert len(network.state_dict()) == 3 * sum(expected.values())


def test_sd1_names_and_shapes() -> None:
    shapes = _shapes(_network("sd1", conv=True))
    expected = {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": ((4, 320), (320, 4)),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": ((4, 768), (320, 4)),
        "lora_unet_mid_block_attentions_0_proj_in": ((4, 1280, 1, 1), (1280, 4, 1, 1)),
        "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_0_proj": ((4, 320), (2560, 4)),
        "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn2_to_out_0": ((4, 1280), (1280, 4)),
        "lora_unet_down_blocks_1_resnets_0_conv_shortcut": ((4, 320, 1, 1), (640, 4, 1, 1)),
        "lora_unet_down_blocks_0_downsamplers_0_conv": ((8, 320, 3, 3), (320, 8, 1, 1)),
        "lora_unet_up_blocks_0_upsamplers_0_conv": ((8, 1280, 3, 3), (1280, 8, 1, 1)),
        "lora_unet_up_blocks_2_upsamplers_0_conv": ((8, 640, 3, 3), (640, 8, 1, 1)),
        "lora_unet_down_blocks_0_resnets_0_time_emb_proj": ((4, 1280), (320, 4)),
        "lora_unet_down_blocks_0_resnets_0_conv1": ((8, 320, 3, 3), (320, 8, 1, 1)),
        "lora_unet_up_blocks_3_resnets_2_conv2": ((8, 320, 3, 3), (320, 8, 1, 1)),
        "lora_unet_mid_block_resnets_1_conv2": ((8, 1280, 3, 3), (1280, 8, 1, 1)),
        "lora_te_text_model_encoder_layers_11_self_attn_q_proj": ((4, 768), (768, 4)),
        "lora_te_text_model_encoder_layers_0_mlp_fc1": ((4, 768), (3072, 4)),
    }
    for name, (down, up) in expected.items():
        assert shapes[f"{name}.lora_down.weight"] == down, name
        assert shapes[f"{name}.lora_up.weight"] == up, name
        assert shapes[f"{name}.alpha"] == (), name
    assert "lora_unet_up_blocks_3_upsamplers_0_conv.lora_down.weight" not in shapes
    assert "lora_unet_down_blocks_3_downsamplers_0_conv.lora_down.weight" not in shapes


def test_sd2_projections_are_written_as_1x1_convs_and_te_has_23_layers() -> None:
    shapes = _shapes(_network("sd2", conv=False))
    assert shapes["lora_unet_mid_block_attentions_0_proj_in.lora_down.weight"] == (4, 1280, 1, 1)
    assert shapes["lora_unet_up_blocks_3_attentions_2_proj_out.lora_up.weight"] == (320, 4, 1, 1)
    assert shapes["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"] \
        == (4, 1024)
    assert shapes["lora_te_text_model_encoder_layers_22_mlp_fc1.lora_up.weight"] == (4096, 4)
    assert not any("layers_23" in k for k in shapes)


def test_sdxl_names_and_shapes() -> None:
    shapes = _shapes(_network("sdxl", conv=True))
    expected = {
        "lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k": ((4, 2048), (640, 4)),
        "lora_unet_middle_block_1_transformer_blocks_9_ff_net_2": ((4, 5120), (1280, 4)),
        "lora_unet_output_blocks_2_1_proj_out": ((4, 1280), (1280, 4)),
        "lora_unet_output_blocks_2_2_conv": ((8, 1280, 3, 3), (1280, 8, 1, 1)),
        "lora_unet_input_blocks_1_0_in_layers_2": ((8, 320, 3, 3), (320, 8, 1, 1)),
        "lora_unet_input_blocks_1_0_emb_layers_1": ((4, 1280), (320, 4)),
        "lora_unet_input_blocks_3_0_op": ((8, 320, 3, 3), (320, 8, 1, 1)),
        "lora_unet_output_blocks_0_0_skip_connection": ((4, 2560, 1, 1), (1280, 4, 1, 1)),
        "lora_te1_text_model_encoder_layers_0_self_attn_k_proj": ((4, 768), (768, 4)),
        "lora_te2_text_model_encoder_layers_31_mlp_fc2": ((4, 5120), (1280, 4)),
    }
    for name, (down, up) in expected.items():
        assert shapes[f"{name}.lora_down.weight"] == down, name
        assert shapes[f"{name}.lora_up.weight"] == up, name
    assert not any("output_blocks_2_1_conv" in k or "input_blocks_1_1" in k for k in shapes)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_stems_embeddings_norms_and_projection_never_get_a_lora(family: str) -> None:
    names = {k.split(".")[0] for k in _network(family, conv=True).state_dict()}
    forbidden = ("conv_in", "conv_out", "input_blocks_0_0", "lora_unet_out_", "time_embed", "label_emb",
                 "norm", "embeddings", "text_projection")
    assert not [n for n in names if any(f in n for f in forbidden)]


def test_alpha_values_follow_dim_and_conv_alpha() -> None:
    state = _network("sd1", conv=True, size="tiny").state_dict()
    assert float(state["lora_unet_down_blocks_0_resnets_0_time_emb_proj.alpha"]) == ALPHA
    assert float(state["lora_unet_down_blocks_1_resnets_0_conv_shortcut.alpha"]) == ALPHA
    assert float(state["lora_unet_down_blocks_0_resnets_0_conv1.alpha"]) == CONV_ALPHA
    assert all(v.dtype == torch.float32 and v.ndim == 0 for k, v in state.items() if k.endswith(".alpha"))
    default = create_network(*build_models("sd1"), "sd1", 8, None, conv_dim=2).state_dict()
    assert float(default["lora_te_text_model_encoder_layers_0_mlp_fc1.alpha"]) == 8.0   # None -> rank
    assert float(default["lora_unet_down_blocks_0_resnets_0_conv1.alpha"]) == 1.0       # kohya's conv default


def test_unet_only_and_text_encoder_only() -> None:
    unet_only = _network("sdxl", conv=False, train_text_encoder=False)
    te_only = _network("sdxl", conv=False, train_unet=False)
    assert unet_only.module_counts() == {"lora_unet": 722}
    assert te_only.module_counts() == {"lora_te1": 72, "lora_te2": 192}
    assert all(k.startswith("lora_te") for k in te_only.state_dict())
    with pytest.raises(NetworkError, match="nothing to train"):
        _network("sd1", conv=False, train_unet=False, train_text_encoder=False)
    with pytest.raises(NetworkError, match="2 text encoder"):
        create_network(build_models("sdxl")[0], build_models("sdxl")[1][:1], "sdxl", 4, 1.0)


def test_name_table_matches_every_layer_of_the_diffusers_unet() -> None:
    """Every Linear/Conv2d path of our SD1 U-Net maps to a diffusers module with the same weight shape."""
    diffusers = pytest.importorskip("diffusers")
    from .diffusers_twins import diffusers_unet_config

    ours, _ = build_models("sd1", "real")
    with torch.device("meta"):
        theirs = diffusers.UNet2DConditionModel(**diffusers_unet_config(SD1_UNET))
    theirs_modules = dict(theirs.named_modules())
    layers = [(p, m) for p, m in ours.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(layers) > 250
    for path, module in layers:
        twin = theirs_modules[ldm_to_diffusers_path(path, SD1_UNET)]
        assert twin.weight.shape == module.weight.shape, path


def test_name_table_examples_and_errors() -> None:
    assert ldm_to_diffusers_path("output_blocks.2.1.conv", SD1_UNET) == "up_blocks.0.upsamplers.0.conv"
    assert ldm_to_diffusers_path("output_blocks.8.2.conv", SD1_UNET) == "up_blocks.2.upsamplers.0.conv"
    assert ldm_to_diffusers_path("input_blocks.9.0.op", SD1_UNET) == "down_blocks.2.downsamplers.0.conv"
    assert ldm_to_diffusers_path("middle_block.2.in_layers.2", SD1_UNET) == "mid_block.resnets.1.conv1"
    assert ldm_to_diffusers_path("input_blocks.0.0", SD1_UNET) == "conv_in"
    assert unet_lora_name("output_blocks.2.2.conv", "sdxl", SDXL_UNET) == "lora_unet_output_blocks_2_2_conv"
    for bad in ("input_blocks.12.0.op", "output_blocks.11.2.conv", "output_blocks.2.2.conv", "decoder.conv_in",
                "input_blocks.x.0"):
        with pytest.raises(KohyaNameError, match="U-Net path|no "):
            ldm_to_diffusers_path(bad, SD1_UNET)
    with pytest.raises(KohyaNameError, match="sd3"):
        unet_lora_name("input_blocks.1.1.proj_in", "sd3", SD1_UNET)
