"""Block numbering, block options and block-wise ranks, checked against sd-scripts' rules (networks/lora.py)."""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from lib_train_tools.network import create_network, create_network_from_weights, save_lora, unet_targets
from lib_train_tools.network.blocks import (
    SD_LAYOUT, SDXL_LAYOUT, BlockError, BlockOptions, block_index, block_plan, preset_weights,
)

from .models import build_models, randomize

SD_TRANSFORMER_BLOCKS = {1, 2, 4, 5, 7, 8, 12, 16, 17, 18, 19, 20, 21, 22, 23, 24}


def _ldm_block(path: str, family: str) -> int:
    """The block number read off our LDM/SGM module path, independently of the kohya name.

    For SD1/SD2 sd-scripts' IN/OUT numbers are the LDM input/output block indices; for SDXL
    input_blocks.n is 1 + n, middle_block.n 10 + n and output_blocks.n 13 + n.
    """
    parts = path.split(".")
    sdxl = family == "sdxl"
    if parts[0] == "input_blocks":
        return int(parts[1]) + (1 if sdxl else 0)
    if parts[0] == "middle_block":
        return 10 + int(parts[1]) if sdxl else 12
    assert parts[0] == "output_blocks", path
    return 13 + int(parts[1])


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_every_unet_layer_is_numbered_as_its_ldm_block(family: str) -> None:
    unet, _ = build_models(family)
    targets = unet_targets(unet, family, include_locon=True)
    # IN00 (SD) and BASE, IN00 (conv_in), OUT (SDXL) never have a LoRA
    assert {block_index(t.name, family) for t in targets} == (set(range(1, 25)) if family != "sdxl" else
                                                              set(range(2, 22)))
    for target in targets:
        assert block_index(target.name, family) == _ldm_block(target.path, family), target.name


@pytest.mark.parametrize("name, family, index", [
    ("lora_unet_down_blocks_0_attentions_0_proj_in", "sd1", 1),
    ("lora_unet_down_blocks_0_attentions_1_transformer_blocks_0_attn1_to_q", "sd1", 2),
    ("lora_unet_down_blocks_0_downsamplers_0_conv", "sd1", 3),
    ("lora_unet_down_blocks_2_attentions_1_proj_out", "sd2", 8),
    ("lora_unet_down_blocks_3_resnets_1_conv2", "sd1", 11),
    ("lora_unet_mid_block_attentions_0_proj_in", "sd1", 12),
    ("lora_unet_mid_block_resnets_1_conv1", "sd2", 12),
    ("lora_unet_up_blocks_0_resnets_2_conv1", "sd1", 15),
    ("lora_unet_up_blocks_0_upsamplers_0_conv", "sd1", 15),
    ("lora_unet_up_blocks_1_attentions_0_proj_in", "sd1", 16),
    ("lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2", "sd1", 24),
    ("lora_unet_input_blocks_4_1_proj_in", "sdxl", 5),
    ("lora_unet_input_blocks_6_0_op", "sdxl", 7),
    ("lora_unet_middle_block_1_transformer_blocks_9_attn2_to_k", "sdxl", 11),
    ("lora_unet_output_blocks_2_2_conv", "sdxl", 15),
    ("lora_unet_output_blocks_8_0_skip_connection", "sdxl", 21),
    ("lora_te_text_model_encoder_layers_0_mlp_fc1", "sd1", None),
    ("lora_te2_text_model_encoder_layers_3_self_attn_q_proj", "sdxl", None),
])
def test_block_index_of_known_names(name: str, family: str, index: int | None) -> None:
    assert block_index(name, family) == index


def test_layouts_have_sd_scripts_counts_and_labels() -> None:
    assert SD_LAYOUT.count == 25 and SDXL_LAYOUT.count == 23
    assert (SD_LAYOUT.labels[0], SD_LAYOUT.labels[11], SD_LAYOUT.labels[12], SD_LAYOUT.labels[24]) == \
        ("IN00", "IN11", "MID", "OUT11")
    assert (SDXL_LAYOUT.labels[1], SDXL_LAYOUT.labels[10], SDXL_LAYOUT.labels[21]) == ("IN00", "MID00", "OUT08")
    with pytest.raises(BlockError, match="none of the 25 SD1/SD2 U-Net blocks"):
        block_index("lora_unet_input_blocks_4_1_proj_in", "sd1")


def test_presets_follow_sd_scripts_formulas() -> None:
    n = 12
    assert preset_weights("sine", n) == pytest.approx([math.sin(math.pi * i / (n - 1) / 2) for i in range(n)])
    # sd-scripts writes cosine as the sine taken over the reversed range
    assert preset_weights("cosine", n) == pytest.approx(
        [math.sin(math.pi * i / (n - 1) / 2) for i in reversed(range(n))])
    assert preset_weights("linear", 9) == pytest.approx([i / 8 for i in range(9)])
    assert preset_weights("reverse_linear", 9) == pytest.approx([1 - i / 8 for i in range(9)])
    assert preset_weights("zeros", 3) == [0.0, 0.0, 0.0]
    assert preset_weights("zeros+0.25", 3) == [0.25, 0.25, 0.25]
    assert preset_weights("sine+1", 12)[0] == 1.0 and preset_weights("sine+1", 12)[-1] == pytest.approx(2.0)
    with pytest.raises(BlockError, match="neither a comma-separated list of numbers nor a preset"):
        preset_weights("square", 12)


def test_lr_weights_cover_sd_scripts_blocks() -> None:
    sd = block_plan(BlockOptions(down_lr_weight="0,0,0,0,0.5", mid_lr_weight="2", up_lr_weight="zeros+0.75"),
                    "sd1", 4, 1.0)
    assert sd is not None and sd.lr_weights is not None and len(sd.lr_weights) == 25
    assert sd.lr_weights[:5] == (0.0, 0.0, 0.0, 0.0, 0.5) and sd.lr_weights[5:12] == (1.0,) * 7
    assert sd.lr_weights[12] == 2.0 and sd.lr_weights[13:] == (0.75,) * 12
    assert sd.notes == ("down_lr_weight has 5 values for 12 blocks; the rest get weight 1",)
    # blocks whose weight is 0 get rank 0, i.e. no module
    assert sd.dims == (0, 0, 0, 0, 4) + (4,) * 20
    xl = block_plan(BlockOptions(down_lr_weight="linear", mid_lr_weight="0.5,0.5,0.5,9",
                                 block_lr_zero_threshold=0.3), "sdxl", 8, 4.0)
    assert xl is not None and xl.lr_weights is not None and len(xl.lr_weights) == 23
    assert xl.lr_weights[0] == 1.0 and xl.lr_weights[22] == 1.0  # embeddings and output layers
    assert xl.lr_weights[1:10] == pytest.approx([0, 0, 0, 3 / 8, 4 / 8, 5 / 8, 6 / 8, 7 / 8, 1])
    assert xl.lr_weights[10:13] == (0.5, 0.5, 0.5) and xl.lr_weights[13:22] == (1.0,) * 9
    assert xl.notes == ("mid_lr_weight has 4 values for 3 blocks; all after the first 3 are ignored",)


def test_block_dims_alphas_and_conv_defaults() -> None:
    dims = ",".join(str(i % 3) for i in range(25))
    plan = block_plan(BlockOptions(block_dims=dims, conv_block_dims=",".join(["2"] * 25)), "sd2", 4, None,
                      conv_alpha=None)
    assert plan is not None and plan.dims == tuple(i % 3 for i in range(25))
    assert plan.alphas == (None,) * 25 and plan.conv_alphas == (1.0,) * 25 and plan.lr_weights is None
    assert plan.rank_alpha("lora_unet_down_blocks_0_attentions_0_proj_in", False, False) == (1, None)
    assert plan.rank_alpha("lora_unet_down_blocks_0_resnets_0_conv1", True, True) == (2, 1.0)
    assert plan.rank_alpha("lora_unet_down_blocks_0_downsamplers_0_conv", True, True) == (2, 1.0)
    assert plan.rank_alpha("lora_unet_down_blocks_1_attentions_1_proj_in", False, False) == (2, None)  # block 5
    assert plan.rank_alpha("lora_unet_mid_block_attentions_0_proj_in", False, False) is None  # block 12: rank 0
    assert plan.rank_alpha("lora_unet_mid_block_resnets_0_conv1", True, True) == (2, 1.0)
    # without conv ranks the LoCon layers (3x3 and the ResBlocks' linear/1x1 layers alike) get no module
    plain = block_plan(BlockOptions(block_dims=dims), "sd1", 4, 1.0)
    assert plain is not None and plain.conv_dims is None
    assert plain.rank_alpha("lora_unet_down_blocks_0_resnets_0_time_emb_proj", True, False) is None
    with_conv_dim = block_plan(BlockOptions(block_dims=dims, block_alphas=",".join(["3"] * 25)), "sd1", 4, 1.0,
                               conv_dim=6, conv_alpha=2.0)
    assert with_conv_dim is not None and with_conv_dim.conv_dims == (6,) * 25
    assert with_conv_dim.rank_alpha("lora_unet_down_blocks_0_resnets_0_time_emb_proj", True, False) == (1, 3.0)
    assert with_conv_dim.rank_alpha("lora_unet_down_blocks_0_resnets_0_conv1", True, True) == (6, 2.0)


def test_nothing_set_means_no_plan_and_lone_alphas_are_noted() -> None:
    assert block_plan(BlockOptions(), "sd1", 4, 1.0) is None
    lone = block_plan(BlockOptions(block_alphas="1"), "sd1", 4, 1.0)
    assert lone is not None and lone.dims is None and lone.lr_weights is None
    assert lone.notes == ("block_alphas ignored: block options act only with block_dims or an lr weight "
                          "(as in sd-scripts)",)


@pytest.mark.parametrize("options, family, message", [
    (BlockOptions(block_dims=",".join(["4"] * 24)), "sd1",
     "block_dims has 24 values; a SD1/SD2 U-Net has 25 blocks \\(IN00-OUT11\\), so it needs exactly 25"),
    (BlockOptions(block_dims=",".join(["4"] * 25)), "sdxl",
     "block_dims has 25 values; a SDXL U-Net has 23 blocks \\(BASE-OUT\\), so it needs exactly 23"),
    (BlockOptions(block_dims=",".join(["4"] * 23), block_alphas="1,2"), "sdxl", "block_alphas has 2 values"),
    (BlockOptions(block_dims=",".join(["4"] * 25), conv_block_dims="8"), "sd2", "conv_block_dims has 1 values"),
    (BlockOptions(block_dims=",".join(["4"] * 24 + ["x"])), "sd1", "block_dims: 'x' in .* is not an integer"),
    (BlockOptions(block_dims=",".join(["4"] * 24 + ["-1"])), "sd1", "must not be negative"),
    (BlockOptions(down_lr_weight="steep"), "sd1", "lr weight 'steep' is neither"),
    (BlockOptions(mid_lr_weight="sine"), "sd1", "mid_lr_weight: 'sine' in 'sine' is not a number"),
    (BlockOptions(up_lr_weight="1,a"), "sdxl", "up_lr_weight: 'a' in '1,a' is not a number"),
    (BlockOptions(down_lr_weight="0.5"), "sdxl", "down_lr_weight=0.5: one number without a comma is no list .*give 9"),
])
def test_malformed_options_are_named(options: BlockOptions, family: str, message: str) -> None:
    with pytest.raises(BlockError, match=message):
        block_plan(options, family, 4, 1.0)


def _block_ranks(network, family: str) -> dict[int, set[int]]:
    ranks: dict[int, set[int]] = {}
    for module in network.unet_loras:
        index = block_index(module.lora_name, family)
        assert index is not None
        ranks.setdefault(index, set()).add(module.rank)
    return ranks


def test_block_dims_build_and_save_ranks_per_block(tmp_path) -> None:
    unet, tes = build_models("sd1")
    dims = ["0", "2", "0", "0", "8", "8", "0", "0", "0", "0", "0", "0", "4", "0", "0", "0", "6", "0", "0", "0", "0",
            "0", "0", "0", "1"]
    alphas = [str(0.5 * i) for i in range(25)]
    network = create_network(unet, tes, "sd1", 4, 1.0, blocks=BlockOptions(",".join(dims), ",".join(alphas)))
    assert _block_ranks(network, "sd1") == {1: {2}, 4: {8}, 5: {8}, 12: {4}, 16: {6}, 24: {1}}
    assert len(network.text_encoder_loras) == 72 and {m.rank for m in network.text_encoder_loras} == {4}
    for module in network.unet_loras:
        index = block_index(module.lora_name, "sd1")
        assert index is not None and module.alpha.item() == (0.5 * index if index else module.rank)
    path = save_lora(tmp_path / "blocks.safetensors", randomize(network, 1), {"ss_network_dim": "4"})
    tensors = load_file(str(path))
    assert tensors["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"].shape[0] == 2
    assert tensors["lora_unet_down_blocks_1_attentions_1_proj_out.lora_up.weight"].shape[1] == 8
    assert tensors["lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_k.lora_down.weight"].shape[0] == 1
    assert tensors["lora_unet_mid_block_attentions_0_proj_in.alpha"].item() == 6.0
    assert not any(k.startswith(("lora_unet_down_blocks_0_attentions_1_", "lora_unet_down_blocks_2_",
                                 "lora_unet_up_blocks_2_")) for k in tensors)
    # continuing from the file with the same options gives the same modules and ranks; without them the
    # layers the file lacks get the file's most common rank
    again = create_network_from_weights(unet, tes, "sd1", path, blocks=BlockOptions(",".join(dims)))
    assert _block_ranks(again, "sd1") == _block_ranks(network, "sd1")
    assert set(_block_ranks(create_network_from_weights(unet, tes, "sd1", path), "sd1")) == SD_TRANSFORMER_BLOCKS


def test_conv_block_dims_turn_locon_on_per_block_for_sdxl() -> None:
    unet, tes = build_models("sdxl")
    dims = ["4"] * 23
    conv = ["0"] * 23
    conv[5] = "2"  # input_blocks.4
    network = create_network(unet, tes, "sdxl", 8, 1.0, train_text_encoder=False,
                             blocks=BlockOptions(",".join(dims), conv_block_dims=",".join(conv)))
    kxk = [m for m in network.unet_loras if tuple(getattr(m.layer, "kernel_size", (1, 1))) != (1, 1)]
    assert kxk and {m.lora_name.split("_")[4] for m in kxk} == {"4"} and {m.rank for m in kxk} == {2}
    children = dict(network.named_children())
    assert "lora_unet_input_blocks_4_0_in_layers_2" in children and "lora_unet_input_blocks_5_0_in_layers_2" \
        not in children
    # as in sd-scripts, conv_block_dims puts every ResBlock in reach: its linear and 1x1 layers take block_dims
    assert children["lora_unet_input_blocks_5_0_emb_layers_1"].rank == 4
    assert {m.rank for m in network.unet_loras if m not in kxk} == {4}


def test_a_zero_lr_weight_drops_the_block_from_a_new_network_only() -> None:
    unet, tes = build_models("sd1")
    options = BlockOptions(up_lr_weight="0,0,0,0,0,0,0,0,0,0,0,1")  # only OUT11 trains on the way up
    network = create_network(unet, tes, "sd1", 4, 1.0, train_text_encoder=False, blocks=options)
    assert {i for i in _block_ranks(network, "sd1") if i >= 13} == {24}
    full = create_network(unet, tes, "sd1", 4, 1.0, train_text_encoder=False)
    continued = create_network_from_weights(unet, tes, "sd1", randomize(full, 2).state_dict(),
                                            train_text_encoder=False, blocks=options)
    assert set(_block_ranks(continued, "sd1")) == SD_TRANSFORMER_BLOCKS  # the file's modules are all there
    assert continued.blocks is not None and continued.blocks.lr_weights == (1.0,) * 13 + (0.0,) * 11 + (1.0,)
    assert torch.equal(continued.state_dict()["lora_unet_up_blocks_1_attentions_0_proj_in.lora_up.weight"],
                       full.state_dict()["lora_unet_up_blocks_1_attentions_0_proj_in.lora_up.weight"])
