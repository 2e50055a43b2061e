"""Whole LoHa / LoKr / DoRA networks on tiny models: saved keys, save -> load round trips, the options
(`network_module = "lycoris.kohya"`, `network_args = ["algo=loha", ...]`) and the metadata they write."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lib_train_tools.network import LoRAFileError, create_network, create_network_from_weights, save_lora
from lib_train_tools.network.adapters import AdapterError, AdapterSpec, adapter_spec, check_same_kind
from lib_train_tools.train.config import load_config, network_args_dict
from lib_train_tools.train.lora_metadata import minimal_metadata

from .models import build_models, token_ids, unet_inputs

SPECS = {
    "loha": AdapterSpec("loha"),
    "lokr": AdapterSpec("lokr", factor=4),
    "lokr-full": AdapterSpec("lokr", full_matrix=True),
    "dora": AdapterSpec("lora", dora=True),
    "loha-dora": AdapterSpec("loha", dora=True),
}
_LOHA = frozenset({"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"})
# The part sets a module may have (a small tiny-model layer stores LoKr's w2 whole even at rank 4); the first occurs.
PARTS = {
    "loha": (_LOHA,),
    "lokr": (frozenset({"lokr_w1", "lokr_w2_a", "lokr_w2_b", "alpha"}), frozenset({"lokr_w1", "lokr_w2", "alpha"})),
    "lokr-full": (frozenset({"lokr_w1", "lokr_w2", "alpha"}),),
    "dora": (frozenset({"lora_down.weight", "lora_up.weight", "alpha", "dora_scale"}),),
    "loha-dora": (_LOHA | {"dora_scale"},),
}


@torch.no_grad()
def _trained(network, seed: int):
    """Every adapter given weights that change its layer (dora_scale moved off the layer's norms)."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in network.named_parameters():
        noise = torch.randn(param.shape, generator=gen)
        param.copy_(param * (1 + 0.1 * noise) if name.endswith("dora_scale") else 0.2 * noise)
    return network


def _network(spec: AdapterSpec, family: str = "sd1", seed: int = 0):
    """A trained-looking network of ``spec`` and the (tiny) models it wraps."""
    unet, tes = build_models(family, seed=seed)
    network = create_network(unet, tes, family, 4, 2.0, conv_dim=2, conv_alpha=1.0, adapter=spec)
    return _trained(network, seed=3), unet, tes


@pytest.mark.parametrize("name", sorted(SPECS))
def test_saved_keys_and_round_trip(tmp_path: Path, name: str) -> None:
    spec = SPECS[name]
    network, unet0, tes0 = _network(spec)
    path = save_lora(tmp_path / f"{name}.safetensors", network, {"ss_network_module": "lycoris.kohya"},
                     torch.float32)
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        tensors = {k: f.get_tensor(k) for k in keys}
    assert keys == set(network.state_dict())
    by_module: dict[str, set[str]] = {}
    for key in keys:
        module, _, part = key.partition(".")
        by_module.setdefault(module, set()).add(part)
    assert len(by_module) == len(network.loras()) == 350   # tiny SD1 with LoCon: 72 text-encoder + 278 U-Net layers
    found = {frozenset(p) for p in by_module.values()}
    assert found <= set(PARTS[name]) and PARTS[name][0] in found
    if spec.dora:
        assert all(v.dtype == torch.float32 for k, v in tensors.items() if k.endswith("dora_scale"))
        # dora_scale is [1, in] for a Linear, [1, in, 1, 1] for a Conv2d: the layer weight's shape, out -> 1
        for module in network.loras():
            weight = module.layer.weight
            want = (1, weight.shape[1]) + (1,) * (weight.ndim - 2)
            assert tuple(tensors[f"{module.lora_name}.dora_scale"].shape) == want

    unet, tes = build_models("sd1", seed=0)
    loaded = create_network_from_weights(unet, tes, "sd1", path)
    assert (loaded.config.adapter.kind, loaded.config.adapter.dora) == (spec.kind, spec.dora)
    assert set(loaded.state_dict()) == keys
    assert all(torch.equal(v, tensors[k]) for k, v in loaded.state_dict().items())
    # the loaded network changes the model exactly as the saved one did
    args, ids = unet_inputs(unet), token_ids()
    with torch.no_grad():
        network.apply()
        want_u, want_t = unet0(*args), tes0[0](ids).last_hidden_state
        base_u = unet(*args)
        loaded.apply()
        got_u, got_t = unet(*args), tes[0](ids).last_hidden_state
    assert (got_u - base_u).abs().max() > 1e-4
    assert torch.allclose(got_u, want_u, atol=1e-5, rtol=0) and torch.allclose(got_t, want_t, atol=1e-5, rtol=0)


def test_load_into_a_network_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = save_lora(tmp_path / "loha.safetensors", _network(SPECS["loha"])[0], {}, torch.float32)
    unet, tes = build_models("sd1")
    with pytest.raises(LoRAFileError, match="loha in the file, the network is lora"):
        create_network(unet, tes, "sd1", 4, 2.0, conv_dim=2).load_weights(path)
    with pytest.raises(AdapterError, match="holds a LoHa network, but the config asks for LoKr"):
        check_same_kind(AdapterSpec("lokr"), AdapterSpec("loha"), str(path))


def test_dora_scale_on_the_output_axis_is_refused(tmp_path: Path) -> None:
    network = _network(SPECS["dora"])[0]
    state = dict(network.state_dict())
    key = next(k for k in state if k.endswith("mlp_fc1.dora_scale"))
    out_features = state[key.replace("dora_scale", "lora_up.weight")].shape[0]
    state[key] = torch.ones(out_features, 1)      # LyCORIS' default wd_on_output layout, misread by A1111 1.10
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "out_axis.safetensors"))
    with pytest.raises(LoRAFileError, match=r"dora_scale has shape \[.*, 1\]; a dora_scale for this layer is \[1, "):
        create_network_from_weights(*build_models("sd1"), "sd1", tmp_path / "out_axis.safetensors")


def test_tucker_and_mixed_files_are_refused(tmp_path: Path) -> None:
    state = dict(_network(SPECS["loha"])[0].state_dict())
    name = next(iter(state)).partition(".")[0]
    tucker = {**state, f"{name}.hada_t1": torch.zeros(4, 4, 3, 3)}
    save_file({k: v.contiguous() for k, v in tucker.items()}, str(tmp_path / "t.safetensors"))
    with pytest.raises(LoRAFileError, match="hada_t1"):
        create_network_from_weights(*build_models("sd1"), "sd1", tmp_path / "t.safetensors")
    mixed = {**{k: v for k, v in state.items() if not k.startswith(name + ".")},
             f"{name}.lora_down.weight": torch.zeros(4, 320), f"{name}.lora_up.weight": torch.zeros(320, 4)}
    save_file({k: v.contiguous() for k, v in mixed.items()}, str(tmp_path / "m.safetensors"))
    with pytest.raises(LoRAFileError, match="mixes module kinds"):
        create_network_from_weights(*build_models("sd1"), "sd1", tmp_path / "m.safetensors")


def test_adapter_spec_from_the_options() -> None:
    assert adapter_spec("networks.lora") == AdapterSpec()
    assert adapter_spec("lycoris.kohya", "LoHa", True) == AdapterSpec("loha", dora=True)
    assert adapter_spec("lycoris.kohya", "lokr", None, 8, True, None) == AdapterSpec("lokr", False, 8, True)
    assert adapter_spec("networks.lora", "locon") == AdapterSpec("locon")
    with pytest.raises(AdapterError, match='LoHa needs network_module = "lycoris.kohya"'):
        adapter_spec("networks.lora", "loha")
    with pytest.raises(AdapterError, match="LoRA with DoRA needs"):
        adapter_spec("networks.lora", None, True)
    with pytest.raises(AdapterError, match="algo must be one of"):
        adapter_spec("lycoris.kohya", "glora")
    with pytest.raises(AdapterError, match="factor must be -1"):
        adapter_spec("lycoris.kohya", "lokr", factor=0)


SD_SCRIPTS_TOML = """
[model]
pretrained_model_name_or_path = "base.safetensors"

[network]
network_module = "lycoris.kohya"
network_dim = 8
network_alpha = 4
network_args = ["algo=loha", "conv_dim=4", "conv_alpha=2", "dora_wd=True", "preset=full"]

[training]
output_dir = "out"
train_data_dir = "img"
"""


def test_sd_scripts_lycoris_toml_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "lycoris.toml"
    path.write_text(SD_SCRIPTS_TOML, encoding="utf-8")
    cfg, warnings = load_config(str(path))
    assert (cfg.network_module, cfg.algo, cfg.dora_wd, cfg.conv_dim, cfg.conv_alpha) == \
        ("lycoris.kohya", "loha", True, 4, 2.0)
    assert cfg.network_args == ("preset=full",)
    assert any("preset=full" in w for w in warnings)   # kept in the metadata, not used
    assert adapter_spec(cfg.network_module, cfg.algo, cfg.dora_wd, cfg.factor, cfg.full_matrix,
                        cfg.decompose_both) == AdapterSpec("loha", dora=True)
    lokr = tmp_path / "lokr.toml"
    lokr.write_text(SD_SCRIPTS_TOML.replace('"algo=loha", ', '"algo=lokr", "factor=8", "full_matrix=true", '),
                    encoding="utf-8")
    cfg, _ = load_config(str(lokr))
    assert (cfg.algo, cfg.factor, cfg.full_matrix) == ("lokr", 8, True)
    metadata = minimal_metadata(cfg, family="sd1", v_prediction=False, resolution=(512, 512), saved_at=0.0)
    assert metadata["ss_network_module"] == "lycoris.kohya"
    assert json.loads(metadata["ss_network_args"]) == {
        "preset": "full", "algo": "lokr", "dora_wd": "True", "factor": "8", "full_matrix": "True",
        "conv_dim": "4", "conv_alpha": "2.0"}
    assert network_args_dict(cfg)["algo"] == "lokr"
