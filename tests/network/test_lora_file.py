"""Saving and loading kohya LoRA files: exact keys, metadata, atomic writes, continuing training, errors."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lib_train_tools.network import (
    LoRADims, LoRAFileError, create_network, create_network_from_weights, group_modules, lora_dims, read_lora,
    save_lora,
)

from .models import build_models, randomize

METADATA = {"ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "2.0",
            "ss_tag_frequency": json.dumps({"img": {"cat": 3}})}


def _network(family: str = "sd1", seed: int = 4, **kw):
    unet, tes = build_models(family)
    kw.setdefault("conv_dim", 2)
    return randomize(create_network(unet, tes, family, 4, 2.0, **kw), seed=seed)


def _file_contents(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_save_writes_exactly_the_kohya_keys_and_metadata(tmp_path: Path, dtype: torch.dtype) -> None:
    network = _network()
    path = save_lora(tmp_path / "out" / "my_lora.safetensors", network, METADATA, dtype)
    tensors, metadata = _file_contents(path)
    state = network.state_dict()
    assert set(tensors) == set(state)
    assert len(tensors) == 3 * len(network.loras())
    assert metadata == METADATA
    for key, value in tensors.items():
        if key.endswith(".alpha"):
            assert value.shape == () and value.dtype == torch.float32 and float(value) == float(state[key])
        else:
            assert value.dtype == dtype
            assert torch.equal(value, state[key].to(dtype))
    assert [p.name for p in path.parent.iterdir()] == ["my_lora.safetensors"]   # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not owner-only: a WebUI user must read it


def test_round_trip_restores_identical_tensors(tmp_path: Path) -> None:
    network = _network("sdxl")
    path = save_lora(tmp_path / "x.safetensors", network, METADATA, torch.float32)
    fresh = create_network(*build_models("sdxl", seed=1), "sdxl", 4, 2.0, conv_dim=2)
    result = fresh.load_weights(path)
    assert result.loaded == len(network.loras()) and not result.missing and not result.skipped
    want, got = network.state_dict(), fresh.state_dict()
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)


def test_continuing_takes_ranks_and_alphas_from_the_file(tmp_path: Path) -> None:
    unet, tes = build_models("sd1")
    original = randomize(create_network(unet, tes, "sd1", 8, 3.0, conv_dim=2, conv_alpha=0.5), seed=2)
    path = save_lora(tmp_path / "a.safetensors", original, METADATA, torch.float32)
    assert lora_dims(group_modules(read_lora(path)[0])) == LoRADims(8, 3.0, 2, 0.5)
    continued = create_network_from_weights(unet, tes, "sd1", path, dropout=0.1)
    assert continued.config.network_dim == 8 and continued.config.conv_dim == 2
    assert continued.module_counts() == original.module_counts()
    want, got = original.state_dict(), continued.state_dict()
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
    assert continued.loras()[0].dropout == 0.1


def test_continuing_with_part_not_trained_reports_skipped_modules(tmp_path: Path) -> None:
    unet, tes = build_models("sd1")
    path = save_lora(tmp_path / "a.safetensors", _network(conv_dim=None), METADATA)
    network = create_network(unet, tes, "sd1", 4, 2.0, train_text_encoder=False)
    result = network.load_weights(path)
    assert result.loaded == 192 and len(result.skipped) == 12 * 6 and not result.missing
    assert all(n.startswith("lora_te_") for n in result.skipped)


def test_sd2_projections_load_from_2d_and_4d_files() -> None:
    network = _network("sd2", conv_dim=None)
    state = network.state_dict()
    as_2d = {k: (v.flatten(1) if v.ndim == 4 else v) for k, v in state.items()}
    assert any(v.ndim == 4 for v in state.values())
    for source in (state, as_2d):
        fresh = create_network_from_weights(*build_models("sd2", seed=7), "sd2", source)
        got = fresh.state_dict()
        assert all(torch.equal(got[k], state[k]) for k in state)


def test_old_files_without_alpha_mean_scale_one() -> None:
    state = {k: v for k, v in _network(conv_dim=None).state_dict().items() if not k.endswith(".alpha")}
    network = create_network_from_weights(*build_models("sd1"), "sd1", state)
    assert all(float(m.alpha) == m.rank for m in network.loras())


def test_keys_matching_no_module_are_named_in_the_error(tmp_path: Path) -> None:
    state = dict(_network(conv_dim=None).state_dict())
    for name in ("lora_unet_conv_in", "lora_unet_down_blocks_9_attentions_0_proj_in"):
        state[f"{name}.lora_down.weight"] = torch.zeros(4, 8)
        state[f"{name}.lora_up.weight"] = torch.zeros(8, 4)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(LoRAFileError, match=r"bad\.safetensors: 2 LoRA module\(s\) match no layer of this sd1 model: "
                                            r"lora_unet_conv_in, lora_unet_down_blocks_9"):
        create_network(*build_models("sd1"), "sd1", 4, 2.0).load_weights(path)
    with pytest.raises(LoRAFileError, match="lora_unet_conv_in"):
        create_network_from_weights(*build_models("sd1"), "sd1", path)


def test_malformed_files_are_refused(tmp_path: Path) -> None:
    good = _network(conv_dim=None).state_dict()
    name = "lora_te_text_model_encoder_layers_0_mlp_fc1"
    cases = {
        "lyco.safetensors": ({**good, f"{name}.hada_w1_a": torch.zeros(2, 2)}, "hada_w1_a"),
        "noup.safetensors": ({k: v for k, v in good.items() if k != f"{name}.lora_up.weight"}, "has no lora_up"),
        "rank.safetensors": ({**good, f"{name}.lora_up.weight": torch.zeros(64, 3)}, "mismatched shapes"),
    }
    for file_name, (tensors, message) in cases.items():
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / file_name))
        with pytest.raises(LoRAFileError, match=message):
            create_network(*build_models("sd1"), "sd1", 4, 2.0).load_weights(tmp_path / file_name)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(LoRAFileError, match="junk.safetensors: not a readable"):
        read_lora(tmp_path / "junk.safetensors")
    with pytest.raises(LoRAFileError, match="missing.safetensors: no such LoRA file"):
        read_lora(tmp_path / "missing.safetensors")
    rank8 = create_network(*build_models("sd1"), "sd1", 8, 2.0).state_dict()
    with pytest.raises(LoRAFileError, match=r"lora_down.weight has shape \[8, 32\], the network expects \[4, 32\]"):
        create_network(*build_models("sd1"), "sd1", 4, 2.0).load_weights(rank8)


def test_save_refuses_bad_metadata_and_foreign_tensors(tmp_path: Path) -> None:
    network = _network(conv_dim=None)
    with pytest.raises(LoRAFileError, match="'ss_network_dim': int"):
        save_lora(tmp_path / "a.safetensors", network, {"ss_network_dim": 4})
    with pytest.raises(LoRAFileError, match="embedding.weight"):
        save_lora(tmp_path / "a.safetensors", {**network.state_dict(), "embedding.weight": torch.zeros(2)}, {})
    with pytest.raises(LoRAFileError, match="a.ckpt: LoRA files are written as .safetensors"):
        save_lora(tmp_path / "a.ckpt", network, {})
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_lora(tmp_path / "a.safetensors", _network(conv_dim=None), {"version": "1"})
    before = path.read_bytes()

    def broken_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_lora(path, _network(conv_dim=None, seed=5), {"version": "2"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


def _delta_from_file(down: torch.Tensor, up: torch.Tensor, alpha: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """kohya's merge rule, from the file's tensors alone: (alpha / rank) * up @ down, in the layer's shape."""
    scale = float(alpha) / down.shape[0]
    if down.ndim == 4 and down.shape[2:] != (1, 1):  # LoCon kxk conv: up is 1x1
        return scale * torch.einsum("or,rikl->oikl", up.flatten(1), down)
    return scale * (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)


@pytest.mark.parametrize("family, conv_dim", [("sd1", 2), ("sdxl", None)])
def test_file_at_weight_zero_changes_nothing_and_at_one_adds_exactly_the_merged_delta(
        tmp_path: Path, family: str, conv_dim: int | None) -> None:
    import copy

    from .models import layer_paths, token_ids, unet_inputs

    path = save_lora(tmp_path / "l.safetensors", _network(family, conv_dim=conv_dim), METADATA, torch.float32)
    tensors, _ = _file_contents(path)
    unet, tes = build_models(family, seed=1)
    merged = [copy.deepcopy(m) for m in [unet, *tes]]
    network = create_network_from_weights(unet, tes, family, path)
    assert len(tensors) == 3 * len(network.loras())
    with torch.no_grad():
        for module in network.loras():
            for root, twin in zip([unet, *tes], merged):
                layer_path = layer_paths(root).get(id(module.layer))
                if layer_path is not None:
                    weight = twin.get_submodule(layer_path).weight
                    n = module.lora_name
                    weight += _delta_from_file(tensors[f"{n}.lora_down.weight"], tensors[f"{n}.lora_up.weight"],
                                               tensors[f"{n}.alpha"], weight)
                    break
            else:
                raise AssertionError(f"{module.lora_name}: layer not found")
        args, ids = unet_inputs(unet), token_ids()
        base = [unet(*args)] + [te(ids).last_hidden_state for te in tes]
        network.apply()
        network.set_multiplier(0.0)
        assert all(torch.equal(a, b) for a, b in zip([unet(*args)] + [te(ids).last_hidden_state for te in tes], base))
        network.set_multiplier(1.0)
        got = [unet(*args)] + [te(ids).last_hidden_state for te in tes]
        want = [merged[0](*args)] + [te(ids).last_hidden_state for te in merged[1:]]
    for g, w, b in zip(got, want, base):
        assert (g - b).abs().max() > 1e-3
        assert torch.allclose(g, w, atol=1e-5, rtol=0)
