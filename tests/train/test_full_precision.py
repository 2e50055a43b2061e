"""full_fp16 / full_bf16: the LoRA weights, their gradients and the optimizer state in half precision.

full_bf16 trains on the CPU; full_fp16 needs CUDA (fp16 mixed precision runs in float32 on the CPU),
so its scaler, which must accept float16 gradients, is tested on its own.
"""

from __future__ import annotations

import types

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lib_train_tools import torch_compat
from lib_train_tools.train import session as session_module
from lib_train_tools.train.cli import EXIT_CODES, main
from lib_train_tools.train.config_checks import device_problems
from lib_train_tools.train.train_config import TrainConfig

from .test_lora_metadata import build, make_cfg
from .test_training_run import events, make_dataset, run_args, tiny_ckpt  # noqa: F401 (fixtures)

# ---------------------------------------------------------------- the scaler

def fp16_step(scaler, gradient: float) -> tuple[torch.nn.Parameter, torch.optim.Optimizer]:
    """One scaled backward pass for a float16 weight whose gradient is ``gradient``."""
    weight = torch.nn.Parameter(torch.ones(4, dtype=torch.float16))
    optimizer = torch.optim.SGD([weight], lr=0.5)
    loss = (weight.float() * gradient).sum()
    scaler.scale(loss).backward()
    return weight, optimizer


@pytest.mark.skipif(not torch_compat.at_least(2, 3), reason="torch before 2.3 scales gradients only on CUDA")
def test_the_full_fp16_scaler_unscales_float16_gradients():
    plain = torch_compat.grad_scaler("cpu")
    _, optimizer = fp16_step(plain, 0.25)
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        plain.unscale_(optimizer)

    scaler = torch_compat.grad_scaler("cpu", fp16_gradients=True)
    weight, optimizer = fp16_step(scaler, 0.25)
    assert weight.grad is not None and weight.grad.dtype == torch.float16
    assert float(weight.grad[0]) == 0.25 * scaler.get_scale()  # scaled by a power of two: exact
    scaler.unscale_(optimizer)
    assert weight.grad.tolist() == [0.25] * 4
    scaler.step(optimizer)
    scaler.update()
    assert weight.detach().tolist() == [0.875] * 4  # 1 - 0.5 * 0.25


@pytest.mark.skipif(not torch_compat.at_least(2, 3), reason="torch before 2.3 scales gradients only on CUDA")
def test_an_overflowing_float16_step_is_skipped_and_the_scale_halves():
    scaler = torch_compat.grad_scaler("cpu", fp16_gradients=True)
    start = scaler.get_scale()
    weight, optimizer = fp16_step(scaler, 1.0)  # 1.0 * 65536 is beyond float16's 65504: inf
    assert torch.isinf(weight.grad).all()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    assert weight.detach().tolist() == [1.0] * 4 and scaler.get_scale() == start / 2


class RecordingScaler:
    """torch 2.1's scaler as far as unscaling goes: ``unscale_`` passes allow_fp16=False."""

    def __init__(self, *args):
        self.allowed: list[bool] = []

    def _unscale_grads_(self, optimizer, inv_scale, found_inf, allow_fp16):
        self.allowed.append(allow_fp16)
        return {}

    def unscale_(self, optimizer):
        return self._unscale_grads_(optimizer, None, None, False)


def test_the_old_scaler_class_is_patched_the_same_way(monkeypatch):
    monkeypatch.setattr(torch_compat, "TORCH_VERSION", (2, 1, 2))
    monkeypatch.setattr(torch.cuda.amp, "GradScaler", RecordingScaler)
    scaler = torch_compat.grad_scaler("cuda", fp16_gradients=True)
    scaler.unscale_(None)
    assert scaler.allowed == [True]
    untouched = torch_compat.grad_scaler("cuda")
    untouched.unscale_(None)
    assert untouched.allowed == [False]


# ---------------------------------------------------------------- the network's precision

class TinyNetwork(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lora_down = torch.nn.Linear(8, 2, bias=False)
        self.register_buffer("alpha", torch.tensor(3.7))


@pytest.mark.parametrize("options, dtype", [({"full_bf16": True}, torch.bfloat16),
                                            ({"full_fp16": True}, torch.float16)])
def test_the_lora_parameters_take_the_working_precision_and_alpha_stays_float32(options, dtype):
    network, said = TinyNetwork(), []
    cfg = types.SimpleNamespace(**{"full_fp16": False, "full_bf16": False, **options})
    assert session_module._set_network_precision(cfg, network, dtype, said.append) == dtype
    assert network.lora_down.weight.dtype == dtype and network.alpha.dtype == torch.float32
    assert float(network.alpha) == pytest.approx(3.7, abs=1e-6)  # 3.7 is not a bfloat16 value
    assert len(said) == 1 and str(dtype) in said[0]


def test_full_bf16_on_a_card_that_fell_back_to_fp16_keeps_float32_and_says_so():
    network, said = TinyNetwork(), []
    cfg = types.SimpleNamespace(full_fp16=False, full_bf16=True)
    assert session_module._set_network_precision(cfg, network, torch.float16, said.append) == torch.float32
    assert network.lora_down.weight.dtype == torch.float32
    assert said == ["full_bf16 is off: the base model runs in torch.float16, so the LoRA weights stay float32"]


def test_full_fp16_is_refused_off_cuda():
    cfg = TrainConfig(full_fp16=True, mixed_precision="fp16")
    assert device_problems(cfg, "cuda") == []
    for device in ("cpu", "mps"):
        problems = device_problems(cfg, device)
        assert len(problems) == 1 and problems[0].startswith(f"full_fp16 needs a CUDA GPU, and this run trains on "
                                                             f"{device}")
    assert device_problems(TrainConfig(full_bf16=True, mixed_precision="bf16"), "cpu") == []


# ---------------------------------------------------------------- runs

def test_a_cpu_full_fp16_run_is_refused(tiny_ckpt, tmp_path):  # noqa: F811
    data, out = make_dataset(tmp_path), tmp_path / "out"
    assert main(run_args(tiny_ckpt, data, out, full_fp16=True, mixed_precision="fp16")) == EXIT_CODES["config"]
    errors = [e.message for e in events(out) if e.type == "error"]
    assert len(errors) == 1 and "full_fp16 needs a CUDA GPU" in errors[0]


def test_a_full_bf16_run_trains_in_bfloat16_and_saves_in_save_precision(tiny_ckpt, tmp_path, monkeypatch):  # noqa: F811
    data, out = make_dataset(tmp_path), tmp_path / "out"
    sessions = []
    build_session = session_module.build_session

    def keep(*args, **kwargs):
        sessions.append(build_session(*args, **kwargs))
        return sessions[-1]

    monkeypatch.setattr(session_module, "build_session", keep)
    assert main(run_args(tiny_ckpt, data, out, full_bf16=True, mixed_precision="bf16", max_train_steps=2,
                         save_precision="fp16")) == 0
    session = sessions[0]
    assert {p.dtype for p in session.network.parameters()} == {torch.bfloat16}
    assert {b.dtype for b in session.network.buffers()} == {torch.float32}  # alpha
    state = [t for s in session.optimizer.state.values() for t in s.values() if t.ndim > 0]
    assert state and {t.dtype for t in state} == {torch.bfloat16}  # AdamW's moments follow the weights
    losses = [e.loss for e in events(out) if e.type == "step"]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    tensors = load_file(str(out / "tiny.safetensors"))
    assert {v.dtype for k, v in tensors.items() if not k.endswith(".alpha")} == {torch.float16}
    assert any(v.abs().sum() > 0 for k, v in tensors.items() if k.endswith("lora_up.weight"))
    with safe_open(str(out / "tiny.safetensors"), "pt") as f:
        meta = f.metadata()
    assert (meta["ss_mixed_precision"], meta["ss_full_fp16"]) == ("bf16", "False")


# ---------------------------------------------------------------- metadata

def test_metadata_records_full_fp16_and_fp8(tmp_path):
    meta = build(make_cfg(tmp_path, mixed_precision="fp16", full_fp16=True, fp8_base=True))
    assert (meta["ss_full_fp16"], meta["ss_fp8_base"], meta["ss_fp8_base_unet"]) == ("True", "True", "False")
    meta = build(make_cfg(tmp_path, mixed_precision="fp16", fp8_base_unet=True))
    assert (meta["ss_full_fp16"], meta["ss_fp8_base"], meta["ss_fp8_base_unet"]) == ("False", "False", "True")
