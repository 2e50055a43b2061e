"""LoHa, LoKr and DoRA modules against the lycoris-lora package (a test-only dependency) and against the
formulas AUTOMATIC1111 1.10's Lora extension applies to the saved tensors (network_hada.py,
network_lokr.py, network.py's apply_weight_decompose), written out here by hand."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import Tensor, nn

from lib_train_tools.network.adapters import AdapterSpec, make_adapter
from lib_train_tools.network.dora import initial_magnitude
from lib_train_tools.network.lokr_module import factorization, kron_layout
from lib_train_tools.network.targets import LoRATarget

try:  # lycoris-lora is a test-only dependency (requirements-test.txt)
    from lycoris.functional import factorization as lycoris_factorization
    from lycoris.modules.locon import LoConModule
    from lycoris.modules.loha import LohaModule
    from lycoris.modules.lokr import LokrModule
except (ImportError, AttributeError) as exc:  # 4.x needs torch >= 2.4 (torch.library.custom_op): the CI's
    pytest.skip(f"lycoris-lora cannot be imported here: {exc}", allow_module_level=True)  # old-torch stages

TOL = 1e-5


def _layer(kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layer: nn.Module
    if kind == "linear":
        layer = nn.Linear(48, 32)
    elif kind == "conv":
        layer = nn.Conv2d(16, 24, 3, padding=1)
    else:  # a large enough linear that LoKr may factorise both halves
        layer = nn.Linear(256, 192)
    return layer.requires_grad_(False)


def _input(layer: nn.Module) -> Tensor:
    gen = torch.Generator().manual_seed(5)
    if isinstance(layer, nn.Conv2d):
        return torch.randn(2, layer.in_channels, 6, 6, generator=gen)
    return torch.randn(2, 3, layer.in_features, generator=gen)


def _ours(spec: AdapterSpec, layer: nn.Module, rank: int, alpha: float):
    target = LoRATarget("lora_unet_x", "lora_unet", "x", layer, locon=False)
    return make_adapter(spec, target, rank, alpha, 1.0, 0.0, 0.0, 0.0)


@torch.no_grad()
def _randomise(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for name, param in module.named_parameters():
        if name == "dora_scale":
            param.mul_(1 + 0.2 * torch.randn(param.shape, generator=gen))
        else:
            param.copy_(0.2 * torch.randn(param.shape, generator=gen))


def _theirs(spec: AdapterSpec, layer: nn.Module, rank: int, alpha: float) -> nn.Module:
    """lycoris-lora's module of the same kind; wd_on_out=False is the DoRA layout A1111 1.10 applies."""
    kw = dict(multiplier=1.0, lora_dim=rank, alpha=alpha, weight_decompose=spec.dora, wd_on_out=False)
    if spec.kind == "loha":
        return LohaModule("x", layer, **kw)
    if spec.kind == "lokr":
        return LokrModule("x", layer, factor=spec.factor, full_matrix=spec.full_matrix,
                          decompose_both=spec.decompose_both, **kw)
    return LoConModule("x", layer, **kw)


@torch.no_grad()
def _copy_into(theirs: nn.Module, ours: nn.Module) -> None:
    own = {k: v for k, v in ours.state_dict().items() if k != "alpha"}
    for key, value in own.items():
        target = theirs.get_parameter(key)
        assert target.shape == value.shape, (key, target.shape, value.shape)
        target.copy_(value)


CASES = {
    "loha-linear": ("linear", AdapterSpec("loha"), 4, 2.0),
    "loha-conv": ("conv", AdapterSpec("loha"), 4, 3.0),
    "loha-dora-linear": ("linear", AdapterSpec("loha", dora=True), 4, 2.0),
    "loha-dora-conv": ("conv", AdapterSpec("loha", dora=True), 2, 1.0),
    "lokr-linear-factored-w2": ("linear", AdapterSpec("lokr"), 2, 1.5),
    "lokr-linear-full-w2": ("linear", AdapterSpec("lokr"), 8, 4.0),          # rank >= half of w2's side
    "lokr-linear-full-matrix": ("linear", AdapterSpec("lokr", full_matrix=True), 2, 1.0),
    "lokr-linear-factor-4": ("linear", AdapterSpec("lokr", factor=4), 2, 1.0),
    "lokr-decompose-both": ("big", AdapterSpec("lokr", decompose_both=True), 2, 1.0),
    "lokr-conv-factored-w2": ("conv", AdapterSpec("lokr"), 1, 0.5),
    "lokr-conv-full-w2": ("conv", AdapterSpec("lokr"), 4, 2.0),
    "lokr-dora-conv": ("conv", AdapterSpec("lokr", dora=True), 1, 1.0),
    "dora-lora-linear": ("linear", AdapterSpec("lora", dora=True), 4, 2.0),
    "dora-locon-conv": ("conv", AdapterSpec("locon", dora=True), 4, 1.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_matches_lycoris(case: str) -> None:
    kind, spec, rank, alpha = CASES[case]
    layer = _layer(kind)
    ours = _ours(spec, layer, rank, alpha)
    _randomise(ours, seed=1)
    theirs = _theirs(spec, copy.deepcopy(layer), rank, alpha)
    _copy_into(theirs, ours)
    x = _input(layer)
    with torch.no_grad():
        base = layer(x)
        ours.apply()
        got = layer(x)
        want = theirs(x)
    assert (got - base).abs().max() > 1e-2   # the adapter does change the output
    assert torch.allclose(got, want, atol=TOL, rtol=0), (got - want).abs().max()


@pytest.mark.parametrize("case", sorted(CASES))
def test_merged_delta_matches_lycoris_and_the_webui_formula(case: str) -> None:
    kind, spec, rank, alpha = CASES[case]
    layer = _layer(kind)
    ours = _ours(spec, layer, rank, alpha)
    _randomise(ours, seed=2)
    theirs = _theirs(spec, copy.deepcopy(layer), rank, alpha)
    _copy_into(theirs, ours)
    got = ours.delta_weight()
    with torch.no_grad():
        # lycoris' rebuilt weight change at multiplier 1, scale applied once (its forward's dW)
        if spec.kind == "lora":
            delta = theirs.make_weight() * theirs.scale
        else:
            delta = theirs.get_weight(theirs.shape)
        want = theirs.apply_weight_decompose(layer.weight + delta) - layer.weight if spec.dora else delta
    assert torch.allclose(got, want, atol=TOL, rtol=0), (got - want).abs().max()
    file = {k: v.detach() for k, v in ours.state_dict().items()}
    assert torch.allclose(got, webui_updown(file, layer.weight), atol=TOL, rtol=0)


def webui_updown(w: dict[str, Tensor], orig: Tensor) -> Tensor:
    """What A1111 1.10 adds to ``orig`` for one module's file tensors at multiplier 1 (written from its rules)."""
    alpha = float(w["alpha"])
    if "hada_w1_a" in w:
        dim = w["hada_w1_b"].shape[0]
        updown = (w["hada_w1_a"] @ w["hada_w1_b"]) * (w["hada_w2_a"] @ w["hada_w2_b"])
    elif "lora_down.weight" in w:
        dim = w["lora_down.weight"].shape[0]
        updown = w["lora_up.weight"].flatten(1) @ w["lora_down.weight"].flatten(1)
    else:
        dim = None
        w1 = w["lokr_w1"] if "lokr_w1" in w else w["lokr_w1_a"] @ w["lokr_w1_b"]
        if "lokr_w1_b" in w:
            dim = w["lokr_w1_b"].shape[0]
        w2 = w["lokr_w2"] if "lokr_w2" in w else w["lokr_w2_a"] @ w["lokr_w2_b"]
        if "lokr_w2_b" in w:
            dim = w["lokr_w2_b"].shape[0]
        if w2.ndim == 4:
            w1 = w1[:, :, None, None]
        updown = torch.kron(w1, w2)
    scale = alpha / dim if dim is not None else 1.0
    updown = updown.reshape(orig.shape) * scale
    if "dora_scale" not in w:
        return updown
    merged = orig + updown
    # the norm of every input column, over output channels and kernel (A1111: transpose(0, 1) first)
    norm = merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1)
    norm = norm.reshape(1, merged.shape[1], *[1] * (merged.ndim - 2))
    return merged * (w["dora_scale"] / norm) - orig


@pytest.mark.parametrize("kind, spec, rank, parts", [
    ("linear", AdapterSpec("loha"), 4, {"hada_w1_a": [32, 4], "hada_w1_b": [4, 48], "hada_w2_a": [32, 4],
                                        "hada_w2_b": [4, 48]}),
    ("conv", AdapterSpec("loha"), 4, {"hada_w1_a": [24, 4], "hada_w1_b": [4, 144], "hada_w2_a": [24, 4],
                                      "hada_w2_b": [4, 144]}),
    # 32 = 4 x 8, 48 = 6 x 8: w1 [4, 6] whole, w2 [8, 8] as [8, 2] @ [2, 8]
    ("linear", AdapterSpec("lokr"), 2, {"lokr_w1": [4, 6], "lokr_w2_a": [8, 2], "lokr_w2_b": [2, 8]}),
    ("linear", AdapterSpec("lokr", full_matrix=True), 2, {"lokr_w1": [4, 6], "lokr_w2": [8, 8]}),
    ("linear", AdapterSpec("lokr", factor=4), 2, {"lokr_w1": [4, 4], "lokr_w2_a": [8, 2], "lokr_w2_b": [2, 12]}),
    # 24 = 4 x 6, 16 = 4 x 4: w2 [6, 4, 3, 3] whole at rank 4, else [6, 1] @ [1, 4 * 9]
    ("conv", AdapterSpec("lokr"), 4, {"lokr_w1": [4, 4], "lokr_w2": [6, 4, 3, 3]}),
    ("conv", AdapterSpec("lokr"), 1, {"lokr_w1": [4, 4], "lokr_w2_a": [6, 1], "lokr_w2_b": [1, 36]}),
    # 192 = 12 x 16, 256 = 16 x 16: both halves factorised at rank 2
    ("big", AdapterSpec("lokr", decompose_both=True), 2, {"lokr_w1_a": [12, 2], "lokr_w1_b": [2, 16],
                                                          "lokr_w2_a": [16, 2], "lokr_w2_b": [2, 16]}),
    ("linear", AdapterSpec("lora", dora=True), 4, {"lora_down.weight": [4, 48], "lora_up.weight": [32, 4],
                                                   "dora_scale": [1, 48]}),
    ("conv", AdapterSpec("lora", dora=True), 4, {"lora_down.weight": [4, 16, 3, 3], "lora_up.weight": [24, 4, 1, 1],
                                                 "dora_scale": [1, 16, 1, 1]}),
    ("conv", AdapterSpec("loha", dora=True), 2, {"hada_w1_a": [24, 2], "hada_w1_b": [2, 144], "hada_w2_a": [24, 2],
                                                 "hada_w2_b": [2, 144], "dora_scale": [1, 16, 1, 1]}),
])
def test_key_names_and_shapes(kind: str, spec: AdapterSpec, rank: int, parts: dict[str, list[int]]) -> None:
    module = _ours(spec, _layer(kind), rank, 1.0)
    state = module.state_dict()
    assert {k: list(v.shape) for k, v in state.items() if k != "alpha"} == parts
    assert state["alpha"].shape == ()
    # and lycoris makes the same tensors (LoCon with wd_on_out=False for DoRA)
    theirs = _theirs(spec, _layer(kind), rank, 1.0)
    assert {k: list(v.shape) for k, v in theirs.state_dict().items() if k != "alpha"} == parts


def test_new_modules_change_nothing() -> None:
    for kind, spec, rank, _ in CASES.values():
        layer = _layer(kind)
        module = _ours(spec, layer, rank, 1.0)
        assert torch.equal(module.delta_weight(), torch.zeros_like(layer.weight)), (kind, spec)


def test_lokr_with_both_halves_whole_has_scale_one() -> None:
    layer = _layer("linear")
    module = _ours(AdapterSpec("lokr", full_matrix=True), layer, 2, 8.0)
    assert float(module.alpha) == 2.0      # LyCORIS writes alpha = rank there; the WebUIs then use scale 1
    _randomise(module, seed=4)
    kron = torch.kron(module.lokr_w1, module.lokr_w2)
    assert torch.allclose(module.delta_weight(), kron, atol=TOL, rtol=0)


def test_dora_magnitude_is_the_input_column_norm() -> None:
    weight = torch.arange(12.0).reshape(2, 3, 1, 2)
    got = initial_magnitude(weight)
    want = torch.tensor([math.sqrt(sum(float(v) ** 2 for v in weight[:, j].flatten())) for j in range(3)])
    assert got.shape == (1, 3, 1, 1)
    assert torch.allclose(got.flatten(), want)


@pytest.mark.parametrize("dimension", [1, 7, 12, 16, 127, 128, 250, 320, 360, 512, 640, 768, 1024, 1280, 2048])
@pytest.mark.parametrize("factor", [-1, 2, 3, 4, 8, 12, 16])
def test_factorization_matches_lycoris(dimension: int, factor: int) -> None:
    assert factorization(dimension, factor) == lycoris_factorization(dimension, factor)


def test_factorization_examples() -> None:
    assert [factorization(d) for d in (128, 250, 127, 1024)] == [(8, 16), (10, 25), (1, 127), (32, 32)]
    assert factorization(250, 8) == (5, 50)
    assert kron_layout((1280, 1280), 8).shapes() == {"lokr_w1": (32, 32), "lokr_w2_a": (40, 8), "lokr_w2_b": (8, 40)}
    assert kron_layout((1280, 1280), 20).shapes() == {"lokr_w1": (32, 32), "lokr_w2": (40, 40)}
