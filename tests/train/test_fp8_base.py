"""fp8_base / fp8_base_unet: frozen weights stored as float8_e4m3fn, computed in the working precision.

The storage layer is driven directly on the CPU; the training run forces fp8 on the CPU by patching
the device check (``torch_compat.fp8_storage_problem``), which refuses it there for real runs.
"""

from __future__ import annotations

import copy
import types

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from lib_train_tools import torch_compat
from lib_train_tools.models import fp8_weights
from lib_train_tools.models.loader import load_checkpoint
from lib_train_tools.network import dora
from lib_train_tools.network.lora_module import LoRAModule
from lib_train_tools.network.network import create_network
from lib_train_tools.train import session as session_module
from lib_train_tools.train.cli import EXIT_CODES, main
from lib_train_tools.train.config import ConfigError, load_config
from lib_train_tools.train.config_checks import device_problems
from lib_train_tools.train.train_config import TrainConfig

from .test_training_run import events, make_dataset, run_args, tiny_ckpt  # noqa: F401 (fixtures)

FP8 = torch.float8_e4m3fn


def fp8_rounded(weight: torch.Tensor) -> torch.Tensor:
    """What storing does to a weight, back in the weight's dtype."""
    return weight.to(FP8).to(weight.dtype)


def rounding_bound(weight: torch.Tensor) -> torch.Tensor:
    """The largest change e4m3fn rounding can make: half a step of a 3-bit mantissa (2**-4 of the value)
    in the normal range, half the subnormal step 2**-9 below it."""
    return torch.maximum(weight.abs() * fp8_weights.E4M3_RELATIVE_ERROR,
                         torch.full_like(weight, fp8_weights.E4M3_SUBNORMAL_STEP / 2))


def frozen(layer: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    return layer.to(dtype).requires_grad_(False)


def test_rounding_stays_within_the_e4m3_bound_and_is_tight():
    torch.manual_seed(0)
    weight = torch.randn(4096) * torch.logspace(-4, 2, 4096)  # subnormals to values near 448 / 4
    error = (fp8_rounded(weight) - weight).abs()
    assert bool((error <= rounding_bound(weight)).all())
    normal = weight.abs() > 2 ** -6
    assert float((error[normal] / weight.abs()[normal]).max()) > 0.055  # the bound 0.0625 is nearly reached


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_linear_computes_exactly_with_the_rounded_weight(dtype):
    torch.manual_seed(1)
    layer = frozen(nn.Linear(48, 24), dtype)
    original = copy.deepcopy(layer)
    assert fp8_weights.store_fp8(layer) == 1
    assert layer.weight.dtype == FP8 and layer.bias.dtype == dtype and fp8_weights.compute_dtype(layer) == dtype
    x = torch.randn(3, 7, 48, dtype=dtype)
    out = layer(x)
    assert out.dtype == dtype
    assert torch.equal(out, F.linear(x, fp8_rounded(original.weight), original.bias))
    if dtype == torch.float32:  # close to the original: every product moves by at most |x_i| * bound_i
        worst = x.abs() @ rounding_bound(original.weight).T
        assert bool(((out - original(x)).abs() <= worst + 1e-5).all())
        assert float((out - original(x)).abs().max()) > 0  # and the rounding is really there


def test_a_conv_computes_exactly_and_its_input_gradient_matches():
    torch.manual_seed(2)
    layer = frozen(nn.Conv2d(6, 10, 3, stride=2, padding=1))
    original = copy.deepcopy(layer)
    fp8_weights.store_fp8(layer)
    x = torch.randn(2, 6, 9, 9, requires_grad=True)
    reference_x = x.detach().clone().requires_grad_(True)
    out = layer(x)
    reference = F.conv2d(reference_x, fp8_rounded(original.weight), original.bias, 2, 1)
    assert torch.equal(out, reference)
    out.square().sum().backward()
    reference.square().sum().backward()
    torch.testing.assert_close(x.grad, reference_x.grad, rtol=1e-6, atol=1e-6)


def test_the_linear_input_gradient_matches_and_a_trained_bias_gets_its_gradient():
    torch.manual_seed(3)
    layer = frozen(nn.Linear(16, 8))
    original = copy.deepcopy(layer)
    fp8_weights.store_fp8(layer)
    layer.bias.requires_grad_(True)
    x = torch.randn(5, 16, requires_grad=True)
    reference_x, reference_bias = x.detach().clone().requires_grad_(True), original.bias.detach().clone()
    reference_bias.requires_grad_(True)
    (layer(x) * torch.arange(8.0)).sum().backward()
    (F.linear(reference_x, fp8_rounded(original.weight), reference_bias) * torch.arange(8.0)).sum().backward()
    torch.testing.assert_close(x.grad, reference_x.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(layer.bias.grad, reference_bias.grad)


def test_backward_keeps_only_the_fp8_weight():
    """No working-precision copy of the weight is held between forward and backward."""
    layer = frozen(nn.Linear(64, 32), torch.bfloat16)
    conv = frozen(nn.Conv2d(32, 32, 3, padding=1), torch.bfloat16)
    fp8_weights.store_fp8(layer)
    fp8_weights.store_fp8(conv)
    saved: list[torch.Tensor] = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor)
        return tensor

    x = torch.randn(2, 4, 4, 64, dtype=torch.bfloat16, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        out = conv(layer(x).permute(0, 3, 1, 2))
    weight_shaped = [t for t in saved if t.shape in (layer.weight.shape, conv.weight.shape)]
    assert len(weight_shaped) == 2 and all(t.dtype == FP8 for t in weight_shaped)
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16


def test_storing_refuses_trained_and_out_of_range_weights():
    with pytest.raises(ValueError, match="only frozen weights"):
        fp8_weights.store_fp8(nn.Linear(4, 4))
    layer = frozen(nn.Linear(4, 4))
    with torch.no_grad():
        layer.weight[0, 0] = 500.0
    with pytest.raises(ValueError, match="magnitude of 500.*448"):
        fp8_weights.store_fp8(layer)


def test_dora_reads_the_rounded_weight_through_the_fp8_one():
    torch.manual_seed(7)
    layer = frozen(nn.Linear(12, 6))
    original = copy.deepcopy(layer)
    fp8_weights.store_fp8(layer)
    module = LoRAModule("lora_test", layer, 2, weight_decompose=True)
    torch.testing.assert_close(module.dora_scale.detach(), dora.initial_magnitude(fp8_rounded(original.weight)))
    x = torch.randn(4, 12)
    base = layer(x)
    module.apply()
    out = layer(x)  # lora_up is zero: W' = m * W / ||W|| = W, so the output is the base layer's
    torch.testing.assert_close(out, base, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert module.lora_up.weight.grad is not None and module.dora_scale.grad is not None


@pytest.fixture
def tiny_models(tiny_ckpt):  # noqa: F811
    models = load_checkpoint(tiny_ckpt, dtype=torch.float32)  # float32 computes fastest on the CPU
    for part in (models.unet, *models.text_encoders):
        part.requires_grad_(False)
    return models


def layer_weight_bytes(model: nn.Module) -> int:
    return sum(m.weight.numel() * m.weight.element_size() for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv2d)))


def test_the_unet_weights_take_half_the_bytes_of_fp16_and_compute_the_same(tiny_models):
    unet = tiny_models.unet
    fp16_bytes = layer_weight_bytes(copy.deepcopy(unet).half())
    rounded = copy.deepcopy(unet)  # the same model with fp8-rounded weights kept in float32
    with torch.no_grad():
        for layer in rounded.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.weight.copy_(fp8_rounded(layer.weight))
    others = {n: p.dtype for n, p in unet.named_parameters() if not n.endswith("weight") or "norm" in n}
    float32_bytes = layer_weight_bytes(unet)
    layers = sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in unet.modules())
    assert fp8_weights.store_fp8(unet) == layers
    assert fp8_weights.fp8_weight_bytes(unet) == layer_weight_bytes(unet) == fp16_bytes // 2 == float32_bytes // 4
    assert fp16_bytes > 4 << 20  # millions of weights, as the real layout has them (smaller widths)
    assert {n: p.dtype for n, p in unet.named_parameters() if n in others} == others  # biases, norms unchanged
    assert set(others.values()) == {torch.float32}
    torch.manual_seed(4)
    x, t, context = torch.randn(1, 4, 8, 8), torch.tensor([500]), torch.randn(1, 77, 32)
    with torch.no_grad():
        out = unet(x, t, context)
        expected = rounded(x, t, context)
    assert out.dtype == torch.float32 and torch.equal(out, expected)


def test_text_encoder_embeddings_and_norms_stay_in_the_working_precision(tiny_models):
    encoder = tiny_models.text_encoders[0]
    rounded = copy.deepcopy(encoder)
    with torch.no_grad():
        for layer in rounded.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.copy_(fp8_rounded(layer.weight))
    assert fp8_weights.store_fp8(encoder) == sum(isinstance(m, nn.Linear) for m in encoder.modules())
    kept = {type(m).__name__: m.weight.dtype for m in encoder.modules() if isinstance(m, (nn.Embedding, nn.LayerNorm))}
    assert kept == {"Embedding": torch.float32, "LayerNorm": torch.float32}
    ids = torch.randint(0, 1000, (1, 77), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        got, expected = encoder(ids).hidden_states[-1], rounded(ids).hidden_states[-1]
    assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_lora_wraps_the_upcasting_forward(tiny_models):
    unet = tiny_models.unet
    fp8_weights.store_fp8(unet)
    torch.manual_seed(5)
    x, t, context = torch.randn(1, 4, 8, 8), torch.tensor([100]), torch.randn(1, 77, 32)
    with torch.no_grad():
        before = unet(x, t, context)
    network = create_network(unet, [], "sd1", network_dim=4, network_alpha=2, train_text_encoder=False)
    network.apply()
    with torch.no_grad():
        assert torch.equal(unet(x, t, context), before)  # lora_up starts at zero: the base output is unchanged
    assert all(p.dtype == torch.float32 for p in network.parameters())  # LoRA weights never fp8
    network.remove()
    with torch.no_grad():
        assert torch.equal(unet(x, t, context), before)  # the fp8 forward is given back


def test_fp8_base_unet_stores_only_the_unet(tiny_models):
    said: list[str] = []
    cfg = types.SimpleNamespace(fp8_base=True, fp8_base_unet=True)
    session_module._store_base_fp8(cfg, tiny_models, said.append)
    assert fp8_weights.fp8_weight_bytes(tiny_models.unet) > 0
    assert fp8_weights.fp8_weight_bytes(tiny_models.text_encoders[0]) == 0
    assert "U-Net" in said[0] and "text encoder" not in said[0]


# ---------------------------------------------------------------- where it is refused

def test_refused_on_cpu_mps_and_a_torch_without_float8(monkeypatch):
    cfg = TrainConfig(fp8_base=True, mixed_precision="bf16")
    assert device_problems(cfg, "cuda") == []
    cpu = device_problems(cfg, "cpu")
    assert len(cpu) == 1 and cpu[0].startswith("fp8_base needs a CUDA GPU, and this run trains on cpu")
    assert "no float8 type" in device_problems(cfg, "mps")[0]
    unet_only = device_problems(TrainConfig(fp8_base_unet=True, mixed_precision="fp16"), "cpu")
    assert unet_only[0].startswith("fp8_base_unet needs a CUDA GPU")
    monkeypatch.setattr(torch_compat, "TORCH_VERSION", (2, 0, 1))
    assert torch_compat.float8_storage_dtype() is None
    assert "needs torch 2.1 or newer" in device_problems(cfg, "cuda")[0]


def test_fp8_needs_mixed_precision():
    required = {"pretrained_model_name_or_path": "/m.safetensors", "train_data_dir": "/d", "output_dir": "/o"}
    with pytest.raises(ConfigError) as info:
        load_config(None, {**required, "fp8_base": True})
    assert info.value.problems == ['fp8_base needs mixed_precision = "fp16" or "bf16": the float8 weights are '
                                   'cast to it to compute']
    load_config(None, {**required, "fp8_base": True, "mixed_precision": "bf16"})


def test_a_cpu_run_is_refused_with_the_reason(tiny_ckpt, tmp_path):  # noqa: F811
    data, out = make_dataset(tmp_path), tmp_path / "out"
    assert main(run_args(tiny_ckpt, data, out, fp8_base=True, mixed_precision="bf16")) == EXIT_CODES["config"]
    errors = [e.message for e in events(out) if e.type == "error"]
    assert len(errors) == 1 and "fp8_base needs a CUDA GPU" in errors[0]
    assert not (out / "tiny.safetensors").exists()


def test_a_forced_cpu_run_trains_and_saves_the_usual_file(tiny_ckpt, tmp_path, monkeypatch, capsys):  # noqa: F811
    data = make_dataset(tmp_path)
    plain, stored = tmp_path / "plain", tmp_path / "fp8"
    options = {"mixed_precision": "fp16", "max_train_steps": 2}  # fp16 computes in float32 on the CPU: faster
    assert main(run_args(tiny_ckpt, data, plain, **options)) == 0
    monkeypatch.setattr(torch_compat, "fp8_storage_problem", lambda device: None)  # what CUDA answers
    assert main(run_args(tiny_ckpt, data, stored, fp8_base=True, **options)) == 0
    losses = [e.loss for e in events(stored) if e.type == "step"]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    said = [line for line in capsys.readouterr().err.splitlines() if "float8" in line]
    assert len(said) == 1 and "U-Net" in said[0] and "text encoder 1" in said[0], said
    a, b = load_file(str(plain / "tiny.safetensors")), load_file(str(stored / "tiny.safetensors"))
    assert a.keys() == b.keys() and {k: v.dtype for k, v in a.items()} == {k: v.dtype for k, v in b.items()}
    assert {v.dtype for v in b.values()} == {torch.float32}  # save_precision unset: float32, as without fp8
    with safe_open(str(stored / "tiny.safetensors"), "pt") as f:
        meta = f.metadata()
    assert (meta["ss_fp8_base"], meta["ss_fp8_base_unet"], meta["ss_full_fp16"]) == ("True", "False", "False")
