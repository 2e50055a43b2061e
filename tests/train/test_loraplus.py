"""LoRA+ and block lr weights in the optimizer groups, the config, the metadata and a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lib_train_tools.network import create_network, create_network_from_weights
from lib_train_tools.network.blocks import BLOCK_OPTION_NAMES, BlockOptions, block_index
from lib_train_tools.network.param_groups import LoRAPlus
from lib_train_tools.train.cli import main
from lib_train_tools.train.config import load_config, network_args_dict, to_toml
from lib_train_tools.train.optimizers import OptimizerArgError, make_optimizer
from lib_train_tools.train.params import get_param
from ..network.models import build_models, randomize, unet_inputs
from .test_lora_metadata import build, make_cfg
from .test_training_run import make_dataset, run_args, tiny_ckpt  # noqa: F401 (a fixture)

SD1_DIMS = ["0"] * 25
SD1_DIMS[1], SD1_DIMS[2], SD1_DIMS[12], SD1_DIMS[24] = "2", "2", "4", "8"  # IN01, IN02, MID, OUT11


def _summary(groups: list[dict]) -> list[tuple[str, float, int]]:
    return [(g["name"], g["lr"], len(g["params"])) for g in groups]


def test_loraplus_ratio_is_the_parts_own_else_the_general_one() -> None:
    assert (LoRAPlus(16.0).unet_ratio, LoRAPlus(16.0).text_encoder_ratio) == (16.0, 16.0)
    assert (LoRAPlus(16.0, 8.0, None).unet_ratio, LoRAPlus(16.0, 8.0, None).text_encoder_ratio) == (8.0, 16.0)
    assert (LoRAPlus(None, None, 4.0).unet_ratio, LoRAPlus(None, None, 4.0).text_encoder_ratio) == (None, 4.0)
    assert LoRAPlus(0.0).unet_ratio is None  # 0 is off, as in sd-scripts


def test_loraplus_gives_lora_up_its_own_faster_group() -> None:
    unet, tes = build_models("sd1")
    network = create_network(unet, tes, "sd1", 4, 1.0)
    groups = network.param_groups(1e-4, 5e-5, 1e-3, LoRAPlus(16.0, None, 4.0))
    assert _summary(groups) == [("text_encoder", 5e-5, 72), ("text_encoder_plus", 2e-4, 72),
                                ("unet", 1e-4, 192), ("unet_plus", 1.6e-3, 192)]
    ups = {id(m.lora_up.weight) for m in network.loras()}
    assert {id(p) for g in groups if g["name"].endswith("_plus") for p in g["params"]} == ups
    assert not ups & {id(p) for g in groups if not g["name"].endswith("_plus") for p in g["params"]}
    # without LoRA+ the groups are the plain ones
    assert _summary(network.param_groups(1e-4, None, 1e-3)) == [("text_encoder", 1e-3, 144), ("unet", 1e-4, 384)]


def test_block_lr_weights_make_one_group_per_block() -> None:
    unet, tes = build_models("sdxl")
    options = BlockOptions(down_lr_weight="0,0,0,0,0.5,1,1,1,2", mid_lr_weight="1,0.25,1", up_lr_weight="zeros+0.5")
    network = create_network(unet, tes, "sdxl", 4, 1.0, train_text_encoder=False, blocks=options)
    groups = network.param_groups(1e-4, None, 1e-3, LoRAPlus(unet_lr_ratio=10.0))
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["unet_IN04"] == pytest.approx(0.5e-4) and lrs["unet_IN04_plus"] == pytest.approx(0.5e-3)
    assert lrs["unet_IN08"] == pytest.approx(2e-4) and lrs["unet_MID01"] == pytest.approx(0.25e-4)
    assert lrs["unet_OUT00"] == pytest.approx(0.5e-4) and lrs["unet_OUT05_plus"] == pytest.approx(0.5e-3)
    assert not any(name.startswith(("unet_IN00", "unet_IN01", "unet_IN02", "unet_IN03")) for name in lrs)
    for group in groups:  # every module of a group lies in the block its name says
        label = group["name"].removeprefix("unet_").removesuffix("_plus")
        owners = [m for m in network.unet_loras if any(p is q for p in m.parameters() for q in group["params"])]
        assert owners and {network.blocks.label(block_index(m.lora_name, "sdxl")) for m in owners} == {label}


def test_a_zero_lr_weight_leaves_the_block_unchanged_by_a_step() -> None:
    unet, tes = build_models("sd1")
    full = randomize(create_network(unet, tes, "sd1", 4, 1.0, train_text_encoder=False), 3)
    network = create_network_from_weights(unet, tes, "sd1", full.state_dict(), train_text_encoder=False,
                                          blocks=BlockOptions(mid_lr_weight="0", up_lr_weight="0.5,0.5"))
    network.apply()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    optimizer = make_optimizer("AdamW", network.param_groups(1e-2, None, 1e-2, LoRAPlus(4.0)), 1e-2)
    x, t, context, _ = unet_inputs(unet)
    unet(x, t, context).square().mean().backward()
    optimizer.step()
    network.remove()
    after = network.state_dict()
    mid = [k for k in after if k.startswith("lora_unet_mid_block_") and k.endswith("weight")]
    moved = [k for k in after if k.startswith(("lora_unet_up_", "lora_unet_down_")) and k.endswith("weight")]
    assert mid and all(torch.equal(after[k], before[k]) for k in mid)
    assert not any(p.requires_grad for m in network.unet_loras if m.lora_name.startswith("lora_unet_mid_")
                   for p in m.parameters())
    assert moved and all(not torch.equal(after[k], before[k]) for k in moved)


def test_prodigy_refuses_groups_with_different_rates() -> None:
    weight, up = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    groups = [{"params": [weight], "lr": 1.0, "name": "unet"}, {"params": [up], "lr": 16.0, "name": "unet_plus"}]
    with pytest.raises(OptimizerArgError, match=r"Prodigy needs one learning rate .*\[1.0, 16.0\] \(unet, unet_plus\)"):
        make_optimizer("prodigy", groups, 1.0)


SD_SCRIPTS_TOML = """
[model_arguments]
pretrained_model_name_or_path = "/models/v1-5.safetensors"

[additional_network_arguments]
network_module = "networks.lora"
network_dim = 8
network_alpha = 4
network_args = ["conv_dim=4", "block_dims={dims}", "block_alphas={alphas}", "down_lr_weight=sine+0.5",
                "mid_lr_weight=0.5", "up_lr_weight=1, 1, 0.5", "block_lr_zero_threshold=0.1",
                "loraplus_lr_ratio=16", "loraplus_text_encoder_lr_ratio=4", "unit=4"]
unet_lr = 1e-4

[training_arguments]
output_dir = "/out"
train_data_dir = "/data"
"""


def _sd_scripts_toml(tmp_path: Path) -> Path:
    path = tmp_path / "sd_scripts.toml"
    path.write_text(SD_SCRIPTS_TOML.format(dims=",".join(SD1_DIMS), alphas=",".join(["1"] * 25)), encoding="utf-8")
    return path


def test_the_registry_declares_each_option_as_an_sd_scripts_network_arg() -> None:
    names = BLOCK_OPTION_NAMES + ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio")
    assert len(names) == 11 and all(get_param(name).network_arg == name for name in names)
    assert all(get_param(name).default is None for name in names)


def test_an_sd_scripts_toml_with_these_options_loads_unchanged(tmp_path) -> None:
    cfg, warnings = load_config(str(_sd_scripts_toml(tmp_path)))
    assert cfg.block_dims == ",".join(SD1_DIMS) and cfg.block_alphas == ",".join(["1"] * 25)
    assert (cfg.down_lr_weight, cfg.mid_lr_weight, cfg.up_lr_weight) == ("sine+0.5", "0.5", "1,1,0.5")
    assert (cfg.loraplus_lr_ratio, cfg.loraplus_unet_lr_ratio, cfg.loraplus_text_encoder_lr_ratio) == (16.0, None, 4.0)
    assert cfg.block_lr_zero_threshold == 0.1 and cfg.conv_dim == 4 and cfg.network_args == ("unit=4",)
    unused = [w for w in warnings if "network_args not used" in w]
    assert len(unused) == 1 and unused[0].endswith(": unit=4")
    text = to_toml(cfg)
    assert '"block_dims=' + ",".join(SD1_DIMS) + '"' in text and '"loraplus_lr_ratio=16.0"' in text
    (tmp_path / "again.toml").write_text(text, encoding="utf-8")
    again, _ = load_config(str(tmp_path / "again.toml"))
    assert again == cfg
    # the command line (or the tab) sets them as options of their own, spaces dropped
    flags, _ = load_config(str(tmp_path / "again.toml"), {"up_lr_weight": " 2, 2 ", "loraplus_unet_lr_ratio": "8"})
    assert (flags.up_lr_weight, flags.loraplus_unet_lr_ratio) == ("2,2", 8.0)


def test_the_metadata_records_them_in_ss_network_args(tmp_path) -> None:
    cfg = make_cfg(tmp_path, network_args=("unit=4",), block_dims=",".join(SD1_DIMS), up_lr_weight="cosine",
                   loraplus_lr_ratio=16.0)
    args = json.loads(build(cfg)["ss_network_args"])
    assert args == {"unit": "4", "loraplus_lr_ratio": "16.0", "block_dims": ",".join(SD1_DIMS),
                    "up_lr_weight": "cosine"}
    assert network_args_dict(cfg) == args


def test_a_tiny_run_with_block_dims_and_loraplus(tiny_ckpt, tmp_path) -> None:  # noqa: F811
    data, out = make_dataset(tmp_path), tmp_path / "out"
    code = main(run_args(tiny_ckpt, data, out, config=_sd_scripts_toml(tmp_path), max_train_steps=2))
    assert code == 0
    tensors = load_file(str(out / "tiny.safetensors"))
    downs = {k.removesuffix(".lora_down.weight"): v for k, v in tensors.items()
             if k.endswith("lora_down.weight") and k.startswith("lora_unet_")}
    linear: dict[int, set[int]] = {}  # block -> ranks of its Linear and 1x1 layers (block_dims)
    kxk: dict[int, set[int]] = {}     # block -> ranks of its 3x3 convolutions (conv_dim everywhere)
    for name, down in downs.items():
        index = block_index(name, "sd1")
        assert index is not None
        (kxk if down.ndim == 4 and down.shape[-1] == 3 else linear).setdefault(index, set()).add(down.shape[0])
    assert linear == {1: {2}, 2: {2}, 12: {4}, 24: {8}}
    assert kxk == {index: {4} for index in range(1, 25)}  # no lr weight is 0 (all above the 0.1 threshold)
    assert "lora_unet_down_blocks_0_resnets_0_time_emb_proj" in downs  # a ResBlock's linear layer in IN01
    assert "lora_unet_down_blocks_1_resnets_0_time_emb_proj" not in downs  # IN04 has block dim 0
    assert tensors["lora_unet_mid_block_attentions_0_proj_in.alpha"].item() == 1.0
    assert {v.shape[0] for k, v in tensors.items() if k.startswith("lora_te_") and k.endswith("lora_down.weight")} \
        == {4}  # network_dim from the command line (run_args) wins over the file
    assert any(v.abs().sum() > 0 for k, v in tensors.items() if k.endswith("lora_up.weight"))
    with safe_open(str(out / "tiny.safetensors"), "pt") as f:
        args = json.loads(f.metadata()["ss_network_args"])
    assert args["block_dims"] == ",".join(SD1_DIMS) and args["loraplus_lr_ratio"] == "16.0"
    assert args["down_lr_weight"] == "sine+0.5" and args["unit"] == "4"
