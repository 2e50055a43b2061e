"""The whole network on tiny models: output with LoRA == output with merged weights, apply/remove, lr groups."""
from __future__ import annotations

import copy

import pytest
import torch

from lib_train_tools.network import NetworkError, create_network

from .models import build_models, layer_paths, randomize, token_ids, unet_inputs


def _merged_copies(network, unet, tes):
    """Deep copies of the base models with every adapter's delta added to its layer's weight."""
    roots = [unet] + list(tes)
    copies = [copy.deepcopy(r) for r in roots]
    paths = [layer_paths(r) for r in roots]
    with torch.no_grad():
        for module in network.loras():
            for root_paths, twin in zip(paths, copies):
                if id(module.layer) in root_paths:
                    twin.get_submodule(root_paths[id(module.layer)]).weight += module.delta_weight()
                    break
            else:
                raise AssertionError(f"{module.lora_name}: layer not in any model")
    return copies[0], copies[1:]


@pytest.mark.parametrize("family, conv_dim", [("sd1", 4), ("sd2", 4), ("sdxl", 4)])
def test_lora_at_multiplier_one_equals_merged_weights(family: str, conv_dim: int) -> None:
    unet, tes = build_models(family)
    network = randomize(create_network(unet, tes, family, 4, 2.0, conv_dim=conv_dim, conv_alpha=1.0), seed=3)
    merged_unet, merged_tes = _merged_copies(network, unet, tes)
    args, ids = unet_inputs(unet), token_ids()
    with torch.no_grad():
        base_u, base_t = unet(*args), [te(ids).last_hidden_state for te in tes]
        network.apply()
        network.set_multiplier(0.0)
        assert torch.equal(unet(*args), base_u)
        assert all(torch.equal(te(ids).last_hidden_state, b) for te, b in zip(tes, base_t))
        network.set_multiplier(1.0)
        lora_u, lora_t = unet(*args), [te(ids).last_hidden_state for te in tes]
        want_u, want_t = merged_unet(*args), [te(ids).last_hidden_state for te in merged_tes]
    assert (lora_u - base_u).abs().max() > 1e-3
    assert torch.allclose(lora_u, want_u, atol=1e-5, rtol=0)
    for got, want, base in zip(lora_t, want_t, base_t):
        assert (got - base).abs().max() > 1e-3
        assert torch.allclose(got, want, atol=1e-5, rtol=0)


def test_apply_and_remove_leave_the_model_as_it_was() -> None:
    unet, tes = build_models("sd1")
    keys = list(unet.state_dict())
    args = unet_inputs(unet)
    with torch.no_grad():
        base = unet(*args)
        network = randomize(create_network(unet, tes, "sd1", 4, 1.0, conv_dim=4), seed=1)
        network.apply()
        assert list(unet.state_dict()) == keys
        assert not torch.equal(unet(*args), base)
        network.remove()
        assert torch.equal(unet(*args), base)
    assert not any("forward" in m.__dict__ for m in list(unet.modules()) + list(tes[0].modules()))


def test_network_merge_equals_applied_output() -> None:
    unet, tes = build_models("sd2")
    network = randomize(create_network(unet, tes, "sd2", 4, 4.0, conv_dim=2), seed=9)
    args = unet_inputs(unet)
    with torch.no_grad():
        network.apply()
        applied = unet(*args)
        network.merge()
        assert not any("forward" in m.__dict__ for m in unet.modules())
        assert torch.allclose(unet(*args), applied, atol=1e-5)


def test_gradients_reach_only_the_adapters() -> None:
    unet, tes = build_models("sd1")
    network = create_network(unet, tes, "sd1", 4, 1.0, train_text_encoder=False).train()
    network.apply()
    unet(*unet_inputs(unet)).square().mean().backward()
    ups = [m.lora_up.weight.grad for m in network.unet_loras]
    assert all(g is not None for g in ups) and any(g.abs().sum() > 0 for g in ups)
    assert all(p.grad is None for p in unet.parameters())


def test_param_groups_follow_sd_scripts() -> None:
    unet, tes = build_models("sd1")
    network = create_network(unet, tes, "sd1", 4, 1.0)
    te_params = sum(p.numel() for m in network.text_encoder_loras for p in m.parameters())
    unet_params = sum(p.numel() for m in network.unet_loras for p in m.parameters())

    groups = network.param_groups(unet_lr=1e-4, text_encoder_lr=5e-5, default_lr=1e-3)
    assert [(g["name"], g["lr"], sum(p.numel() for p in g["params"])) for g in groups] == \
        [("text_encoder", 5e-5, te_params), ("unet", 1e-4, unet_params)]
    groups = network.param_groups(unet_lr=None, text_encoder_lr=None, default_lr=1e-3)
    assert [g["lr"] for g in groups] == [1e-3, 1e-3]
    groups = network.param_groups(unet_lr=1e-4, text_encoder_lr=0.0, default_lr=1e-3)
    assert [g["name"] for g in groups] == ["unet"]
    assert not any(p.requires_grad for m in network.text_encoder_loras for p in m.parameters())
    assert "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight" in network.state_dict()
    with pytest.raises(NetworkError, match="no LoRA parameters to train"):
        network.param_groups(unet_lr=0.0, text_encoder_lr=0.0, default_lr=1e-3)


def test_bad_settings_are_refused() -> None:
    unet, tes = build_models("sd1")
    with pytest.raises(NetworkError, match="rank_dropout must be in"):
        create_network(unet, tes, "sd1", 4, 1.0, rank_dropout=1.0)
    with pytest.raises(NetworkError, match="network_dim must be >= 1"):
        create_network(unet, tes, "sd1", 0, 1.0)
    with pytest.raises(NetworkError, match="conv_dim"):
        create_network(unet, tes, "sd1", 4, 1.0, conv_dim=0)
    with pytest.raises(NetworkError, match="no U-Net"):
        create_network(None, tes, "sd1", 4, 1.0)
