"""One LoRA adapter: init, the forward equals the merged weight, apply/remove, dropouts, dtypes."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib_train_tools.network import LoRAModule


def _layer(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "linear":
        return nn.Linear(12, 10)
    if kind == "conv1x1":
        return nn.Conv2d(12, 10, 1)
    return nn.Conv2d(12, 10, 3, stride=2, padding=1)


def _input(layer: nn.Module, batch: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    shape = (batch, 5, 12) if isinstance(layer, nn.Linear) else (batch, 12, 6, 6)
    return torch.randn(shape, generator=gen)


def _adapter(layer: nn.Module, rank: int = 4, alpha: float = 2.0, **kw) -> LoRAModule:
    lora = LoRAModule("lora_test", layer, rank, alpha, **kw)
    with torch.no_grad():
        lora.lora_up.weight.copy_(torch.randn(lora.lora_up.weight.shape, generator=torch.Generator().manual_seed(2)))
    lora.apply()
    return lora


def _merged_forward(layer: nn.Module, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, layer.bias)
    return F.conv2d(x, weight, layer.bias, layer.stride, layer.padding)


@pytest.mark.parametrize("kind, store_as_conv", [("linear", False), ("linear", True), ("conv1x1", False),
                                                  ("conv3x3", False)])
def test_forward_equals_layer_with_merged_delta(kind: str, store_as_conv: bool) -> None:
    layer = _layer(kind)
    x = _input(layer)
    base = layer(x)
    lora = _adapter(layer, multiplier=0.7, store_as_conv=store_as_conv)
    down, up = lora.lora_down.weight, lora.lora_up.weight
    # the formula written out independently of delta_weight(): sum over the rank of up[o, r] * down[r, i, ...]
    expected = 0.7 * (2.0 / 4) * torch.einsum("or,ri...->oi...", up.flatten(1), down.reshape(4, 12, -1))
    assert torch.allclose(lora.delta_weight(), expected.reshape(layer.weight.shape), atol=1e-6)
    out = layer(x)
    assert (out - base).abs().max() > 1e-2
    assert torch.allclose(out, _merged_forward(layer, layer.weight + lora.delta_weight(), x), atol=1e-5)
    if store_as_conv:
        assert down.shape == (4, 12, 1, 1) and up.shape == (10, 4, 1, 1)


def test_new_adapter_changes_nothing_and_has_kohya_init() -> None:
    layer = _layer("linear")
    x = _input(layer)
    lora = LoRAModule("lora_test", layer, 8, None)
    lora.apply()
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    assert not lora.lora_up.weight.any()
    bound = 1 / math.sqrt(12)  # kaiming_uniform(a=sqrt(5)) on fan_in 12
    assert lora.lora_down.weight.abs().max() <= bound and lora.lora_down.weight.std() > bound / 4
    assert float(lora.alpha) == 8.0   # alpha None -> rank
    assert set(lora.state_dict()) == {"lora_down.weight", "lora_up.weight", "alpha"}


def test_multiplier_zero_is_bit_identical_and_remove_restores_forward() -> None:
    layer = _layer("conv3x3")
    x = _input(layer)
    base = layer(x)
    lora = _adapter(layer, multiplier=0.0)
    assert torch.equal(layer(x), base)
    assert "forward" in layer.__dict__
    lora.remove()
    assert "forward" not in layer.__dict__
    assert torch.equal(layer(x), base)
    assert set(layer.state_dict()) == {"weight", "bias"}
    lora.remove()   # removing twice is harmless
    with pytest.raises(RuntimeError, match="lora_test.*before apply"):
        lora(x)


def test_apply_keeps_an_existing_instance_forward() -> None:
    layer = _layer("linear")
    x = _input(layer)
    patched = lambda t: torch.zeros(1)  # noqa: E731 - someone else's patch of this layer
    layer.forward = patched
    lora = _adapter(layer)
    lora.apply()   # applying twice keeps one branch
    lora.multiplier = 2.0
    twice = layer(x)
    lora.multiplier = 1.0
    assert torch.allclose(twice, 2 * layer(x), atol=1e-6)   # zero base plus the branch alone
    lora.remove()
    assert layer.__dict__["forward"] is patched


def test_dropouts_only_act_in_training() -> None:
    layer = _layer("linear")
    x = _input(layer)
    lora = _adapter(layer, dropout=0.5, rank_dropout=0.5, module_dropout=0.5).eval()
    want = _merged_forward(layer, layer.weight + lora.delta_weight(), x)
    for _ in range(5):
        assert torch.allclose(layer(x), want, atol=1e-5)


def test_neuron_dropout_drops_rank_activations() -> None:
    layer = _layer("linear")
    x = _input(layer)
    lora = _adapter(layer, dropout=0.5).train()
    torch.manual_seed(7)
    out = layer(x)
    torch.manual_seed(7)
    h = F.dropout(F.linear(x, lora.lora_down.weight), p=0.5)
    assert torch.allclose(out, F.linear(x, layer.weight, layer.bias) + F.linear(h, lora.lora_up.weight) * 0.5,
                          atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "conv3x3"])
def test_rank_dropout_drops_whole_rank_channels_per_sample_and_rescales(kind: str) -> None:
    layer = _layer(kind)
    x = _input(layer, batch=3)
    lora = _adapter(layer, rank=4, alpha=4.0, rank_dropout=0.5).train()
    torch.manual_seed(3)
    branch = layer(x) - _merged_forward(layer, layer.weight, x)
    down = lora.lora_down.weight
    up = lora.lora_up.weight
    subsets = [torch.tensor(bits, dtype=torch.float32) for bits in itertools.product((0.0, 1.0), repeat=4)]
    dropped_some = False
    for sample in range(3):
        xs = x[sample:sample + 1]

        def with_mask(mask: torch.Tensor) -> torch.Tensor:
            kept_down = down * mask.reshape(4, *([1] * (down.ndim - 1)))
            return _merged_forward(layer, (up.flatten(1) @ kept_down.flatten(1)).reshape(layer.weight.shape) * 2.0,
                                   xs) - _merged_forward(layer, torch.zeros_like(layer.weight), xs)

        matches = [m for m in subsets if torch.allclose(branch[sample:sample + 1], with_mask(m), atol=1e-4)]
        assert len(matches) == 1, f"sample {sample}: the branch is not one rank subset scaled by 1/(1-p)"
        dropped_some |= bool(matches[0].sum() < 4)
    assert dropped_some


def test_module_dropout_skips_the_whole_branch() -> None:
    layer = _layer("linear")
    x = _input(layer)
    base = F.linear(x, layer.weight, layer.bias)
    lora = _adapter(layer, module_dropout=0.5).train()
    full = _merged_forward(layer, layer.weight + lora.delta_weight(), x)
    torch.manual_seed(11)
    outcomes = []
    for _ in range(60):
        out = layer(x)
        assert torch.equal(out, base) or torch.allclose(out, full, atol=1e-5)
        outcomes.append(torch.equal(out, base))
    assert 0 < sum(outcomes) < 60


def test_half_precision_base_with_float32_adapter() -> None:
    layer = _layer("conv3x3")
    x = _input(layer)
    lora = _adapter(layer)
    want = layer(x)
    layer.to(torch.bfloat16)
    out = layer(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and lora.lora_down.weight.dtype == torch.float32
    assert torch.allclose(out.float(), want, atol=0.1, rtol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_merge_folds_the_delta_into_the_weight() -> None:
    layer = _layer("conv1x1")
    x = _input(layer)
    lora = _adapter(layer)
    want = layer(x)
    lora.merge()
    assert "forward" not in layer.__dict__
    assert torch.allclose(layer(x), want, atol=1e-5)


def test_bad_layers_and_ranks_are_refused() -> None:
    with pytest.raises(TypeError, match="LayerNorm"):
        LoRAModule("lora_x", nn.LayerNorm(4), 4)
    with pytest.raises(ValueError, match="lora_x: LoRA rank must be >= 1"):
        LoRAModule("lora_x", nn.Linear(4, 4), 0)
