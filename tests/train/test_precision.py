"""Precision choices per device and the fp16 gradient-scaler path of the loop (driven on the CPU)."""

from __future__ import annotations

import types

import pytest
import torch
from safetensors.torch import load_file

from lib_train_tools import torch_compat
from lib_train_tools.train import session as session_module
from lib_train_tools.train.cli import main
from lib_train_tools.train.session import resolve_weight_dtype

from .test_training_run import make_dataset, one_thread, run_args, tiny_ckpt  # noqa: F401 (fixtures)


def choose(precision: str, device: str) -> tuple[torch.dtype, list[str]]:
    said: list[str] = []
    dtype = resolve_weight_dtype(types.SimpleNamespace(mixed_precision=precision), torch.device(device), said.append)
    return dtype, said


def test_cpu_trains_fp16_requests_in_float32_and_keeps_bf16():
    dtype, said = choose("fp16", "cpu")
    assert dtype == torch.float32 and "not supported on the CPU" in said[0]
    assert choose("bf16", "cpu") == (torch.bfloat16, [])
    assert choose("no", "cpu") == (torch.float32, [])


@pytest.fixture
def cuda_card(monkeypatch):
    """A CUDA card of the given compute capability, as torch_compat and the session see it."""
    def card(capability: tuple[int, int]) -> None:
        monkeypatch.setattr(torch_compat, "bf16_hardware", lambda device: capability[0] >= 8)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    return card


def test_bf16_on_a_card_without_bfloat16_falls_back_to_fp16_and_says_so(cuda_card):
    cuda_card((7, 5))  # RTX 20xx / T4
    dtype, said = choose("bf16", "cuda")
    assert dtype == torch.float16
    assert len(said) == 1 and "compute capability 7.5" in said[0] and "fp16 with a gradient scaler" in said[0]


def test_bf16_and_fp16_kept_where_the_card_has_them(cuda_card):
    cuda_card((8, 6))  # RTX 30xx
    assert choose("bf16", "cuda") == (torch.bfloat16, [])
    cuda_card((6, 1))  # GTX 10xx: fp16 runs everywhere
    assert choose("fp16", "cuda") == (torch.float16, [])


class PowerOfTwoScaler:
    """What the loop needs of a gradient scaler, on the CPU: losses scaled by 2**10 (exact in float32),
    gradients divided back before clipping; records the calls in order."""

    factor = 1024.0

    def __init__(self) -> None:
        self.calls: list[str] = []

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        self.calls.append("scale")
        return loss * self.factor

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        self.calls.append("unscale_")
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.div_(self.factor)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        self.calls.append("step")
        optimizer.step()

    def update(self) -> None:
        self.calls.append("update")


def test_the_scaled_loop_trains_the_same_weights(tiny_ckpt, tmp_path, monkeypatch, one_thread):  # noqa: F811
    data = make_dataset(tmp_path)
    plain, scaled = tmp_path / "plain", tmp_path / "scaled"
    options = {"max_grad_norm": 1.0, "optimizer_type": "SGDNesterov", "learning_rate": 0.5}  # SGD: scale-sensitive
    assert main(run_args(tiny_ckpt, data, plain, **options)) == 0
    scalers: list[PowerOfTwoScaler] = []
    build = session_module.build_session

    def with_scaler(*args, **kwargs):
        session = build(*args, **kwargs)
        session.scaler = PowerOfTwoScaler()
        scalers.append(session.scaler)
        return session

    monkeypatch.setattr(session_module, "build_session", with_scaler)
    assert main(run_args(tiny_ckpt, data, scaled, **options)) == 0
    assert scalers[0].calls == ["scale", "unscale_", "step", "update"] * 4  # 4 steps, one batch each
    a, b = load_file(str(plain / "tiny.safetensors")), load_file(str(scaled / "tiny.safetensors"))
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 1e-6, worst
