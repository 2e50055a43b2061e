"""Each branch of ``torch_compat``, driven by patching the version it sees (and the torch call it makes).

The real old torch releases run these and the trainer tests in CI too (.ci/run builds venvs with
torch 2.1.2 and 2.3.1); these tests make every branch run on whichever torch is installed.
"""

from __future__ import annotations

import ast
import contextlib
import errno
from pathlib import Path

import pytest
import torch

from lib_train_tools import torch_compat

PACKAGE = Path(__file__).resolve().parents[1] / "lib_train_tools"
A1111, FORGE, NEW = (2, 1, 2), (2, 3, 1), (2, 9, 0)


@pytest.fixture
def version(monkeypatch):
    def set_version(release: tuple[int, int, int]) -> None:
        monkeypatch.setattr(torch_compat, "TORCH_VERSION", release)
    return set_version


@pytest.mark.parametrize("text, expected", [("2.1.2", (2, 1, 2)), ("2.3.1+cu121", (2, 3, 1)),
                                            ("2.13.0+cpu", (2, 13, 0)), ("2.6.0.dev20241112", (2, 6, 0)),
                                            ("2.4", (2, 4, 0))])
def test_parse_version(text, expected):
    assert torch_compat.parse_version(text) == expected


def test_parse_version_refuses_nonsense():
    with pytest.raises(ValueError, match="not a torch version"):
        torch_compat.parse_version("nightly")


def test_at_least_and_the_floor(version):
    version(FORGE)
    assert torch_compat.at_least(2, 3) and torch_compat.at_least(2, 3, 1) and not torch_compat.at_least(2, 3, 2)
    assert torch_compat.version_problem() is None
    version(A1111)
    assert torch_compat.version_problem() is None
    version((2, 0, 1))
    problem = torch_compat.version_problem()
    assert problem and "older than 2.1.2" in problem and torch.__version__ in problem


def test_disabled_autocast_is_never_built(monkeypatch, version):
    # torch 2.1's CPU autocast raised for float32 even with enabled=False
    def refuses(*args, **kwargs):
        raise RuntimeError("Currently, AutocastCPU only support Bfloat16 as the autocast_cpu_dtype")

    monkeypatch.setattr(torch, "autocast", refuses)
    for release in (A1111, FORGE, NEW):
        version(release)
        with torch_compat.autocast("cpu", torch.float32, enabled=False):
            pass


def test_cpu_autocast_to_bfloat16_computes_in_bfloat16():
    a = torch.ones(2, 2)
    with torch_compat.autocast(torch.device("cpu"), torch.bfloat16, enabled=True):
        assert (a @ a).dtype == torch.bfloat16
        assert torch_compat.is_autocast_enabled("cpu")
    assert not torch_compat.is_autocast_enabled("cpu")


def test_cpu_autocast_to_float16_before_2_3_says_why(version):
    version(A1111)
    with pytest.raises(RuntimeError, match="only to bfloat16"):
        torch_compat.autocast("cpu", torch.float16, enabled=True)


def test_is_autocast_enabled_from_2_4_passes_the_device(monkeypatch, version):
    calls = []
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda *args: calls.append(args) or True)
    version((2, 4, 0))
    assert torch_compat.is_autocast_enabled(torch.device("cuda", 1)) is True
    assert torch_compat.is_autocast_enabled("cpu") is True
    assert calls == [("cuda",), ("cpu",)]


def test_is_autocast_enabled_before_2_4_uses_the_old_calls(monkeypatch, version):
    def no_device(*args):  # torch 2.1-2.3: "is_autocast_enabled() takes no arguments"
        if args:
            raise TypeError("is_autocast_enabled() takes no arguments (1 given)")
        return True

    monkeypatch.setattr(torch, "is_autocast_enabled", no_device)
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: False, raising=False)
    for release in (A1111, FORGE):
        version(release)
        assert torch_compat.is_autocast_enabled("cuda") is True
        assert torch_compat.is_autocast_enabled("cpu") is False
        assert torch_compat.is_autocast_enabled("mps") is False


class FakeScaler:
    def __init__(self, *args):
        self.args = args


def test_grad_scaler_from_2_3_is_torch_amp(monkeypatch, version):
    monkeypatch.setattr(torch.amp, "GradScaler", FakeScaler, raising=False)
    version(FORGE)
    scaler = torch_compat.grad_scaler(torch.device("cuda", 0))
    assert isinstance(scaler, FakeScaler) and scaler.args == ("cuda",)


def test_grad_scaler_before_2_3_is_torch_cuda_amp(monkeypatch, version):
    monkeypatch.setattr(torch.cuda.amp, "GradScaler", FakeScaler)
    monkeypatch.setattr(torch.amp, "GradScaler", None, raising=False)  # absent in 2.1
    version(A1111)
    scaler = torch_compat.grad_scaler("cuda")
    assert isinstance(scaler, FakeScaler) and scaler.args == ()
    with pytest.raises(RuntimeError, match="only on CUDA"):
        torch_compat.grad_scaler("cpu")


@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
def test_grad_scaler_scales_on_this_torch():
    scaler = torch_compat.grad_scaler("cuda")
    assert scaler.is_enabled() == torch.cuda.is_available()  # disabled (a pass-through) without a GPU


def fake_cuda(monkeypatch, capability: tuple[int, int], hip: str | None = None) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", hip)
    # from 2.3 is_bf16_supported() says True for emulated bfloat16 too: it must not be what decides
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


@pytest.mark.parametrize("capability, native", [((6, 1), False), ((7, 5), False), ((8, 0), True), ((8, 6), True),
                                                ((9, 0), True), ((12, 0), True)],
                         ids=["gtx10", "rtx20-t4", "a100", "rtx30", "h100", "rtx50"])
def test_bf16_hardware_by_compute_capability(monkeypatch, capability, native):
    fake_cuda(monkeypatch, capability)
    assert torch_compat.bf16_hardware(torch.device("cuda", 0)) is native


def test_bf16_hardware_rocm(monkeypatch):
    fake_cuda(monkeypatch, (9, 0), hip="6.0")
    assert torch_compat.bf16_hardware("cuda") is True


def test_bf16_hardware_cpu_and_absent_cuda(monkeypatch):
    assert torch_compat.bf16_hardware("cpu") is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_compat.bf16_hardware("cuda") is False


CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: you tried to "
           "allocate 34359738368 bytes. Error code 12 (Cannot allocate memory)")


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
    RuntimeError(CPU_OOM),
    RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1024 bytes."),  # Windows
    RuntimeError("MPS backend out of memory (MPS allocated: 1.00 GB)"),
    MemoryError(),
    OSError(errno.ENOMEM, "Cannot allocate memory"),
], ids=["cuda", "cpu-linux", "cpu-windows", "mps", "memoryerror", "enomem"])
def test_out_of_memory_is_recognised(error):
    assert torch_compat.is_out_of_memory(error)


def test_out_of_memory_found_in_the_chain():
    try:
        try:
            raise RuntimeError(CPU_OOM)
        except RuntimeError as inner:
            raise ValueError("while encoding the images") from inner
    except ValueError as outer:
        assert torch_compat.is_out_of_memory(outer)


@pytest.mark.parametrize("error", [RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
                                   ValueError("out of memory is not what this is"), OSError(errno.ENOSPC, "full")])
def test_other_errors_are_not_out_of_memory(error):
    assert not torch_compat.is_out_of_memory(error)


def test_a_real_cpu_allocation_failure_is_recognised():
    try:
        torch.empty(2**62, dtype=torch.uint8)
    except Exception as e:  # the allocator's RuntimeError on every supported torch
        assert torch_compat.is_out_of_memory(e), repr(e)
    else:
        pytest.fail("allocating 4 EiB succeeded")


def test_adafactor_follows_the_version(version):
    version((2, 4, 1))
    assert torch_compat.adafactor_class() is None
    version((2, 5, 0))
    assert torch_compat.adafactor_class() is getattr(torch.optim, "Adafactor", None)


def test_float8_follows_the_version_and_only_cuda_stores_it(version):
    version((2, 0, 1))
    assert torch_compat.float8_storage_dtype() is None
    assert "needs torch 2.1 or newer" in torch_compat.fp8_storage_problem("cuda")
    version(A1111)
    assert torch_compat.float8_storage_dtype() is getattr(torch, "float8_e4m3fn")
    assert torch_compat.fp8_storage_problem(torch.device("cuda", 1)) is None
    assert "this run trains on cpu" in torch_compat.fp8_storage_problem("cpu")
    assert "MPS backend has no float8 type" in torch_compat.fp8_storage_problem("mps")


# Calls that differ between supported torch releases: only torch_compat may make them.
VERSION_SENSITIVE = {"__version__", "OutOfMemoryError", "GradScaler", "is_autocast_enabled", "autocast",
                     "is_autocast_cpu_enabled", "is_bf16_supported", "Adafactor", "float8_e4m3fn"}


def test_version_differences_live_in_one_module():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "torch_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in VERSION_SENSITIVE and _is_torch(node.value):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} torch...{node.attr}")
    assert offenders == [], "use lib_train_tools.torch_compat instead:\n" + "\n".join(offenders)


def _is_torch(node: ast.AST) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "torch"


def test_checkpoint_gives_plain_gradients_and_runs_on_meta_where_torch_refuses(monkeypatch):
    """``torch_compat.checkpoint`` computes what the plain function does (output, input and
    parameter gradients); on meta tensors under a torch whose checkpoint refuses them (forced here)
    it still runs, and leaves no ``torch.meta`` behind."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)

    def run(checkpointed: bool):
        layer.zero_grad()
        x = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
        out = torch_compat.checkpoint(layer, x) if checkpointed else layer(x)
        torch.tanh(out).square().sum().backward()
        return out.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()

    for a, b in zip(run(False), run(True)):
        assert torch.allclose(a, b, atol=1e-6)
    monkeypatch.setattr(torch_compat, "checkpoint_runs_on_meta", lambda: False)
    on_meta = torch.nn.Linear(4, 4, device="meta")
    x = torch.zeros(2, 4, device="meta", requires_grad=True)
    with torch_compat.meta_device_module():   # the backward's recomputation needs it too
        torch_compat.checkpoint(on_meta, x).sum().backward()
    assert x.grad is not None and x.grad.shape == (2, 4) and on_meta.weight.grad.shape == (4, 4)
    assert "meta" not in vars(torch)
