"""The live-bytes tracker and the traced training step: exact counts, meta against real tensors.

The traced estimate runs on meta tensors, which hold no memory; these tests run the very same
step on real (zero-filled) CPU tensors and ask for the same peak within 10 %, for the tiny
checkpoints and for the released SD1.5 U-Net widths at a small latent. The tracker itself is
checked against the process's peak resident memory (Linux's VmHWM), which knows nothing of it.
"""

from __future__ import annotations

import gc
import re
import threading
from pathlib import Path

import pytest
import torch

from lib_train_tools import torch_compat
from lib_train_tools.models.checkpoint_factory import write_checkpoint
from lib_train_tools.models.loader import load_architecture
from lib_train_tools.models.unet import UNetModel
from lib_train_tools.train.cuda_behaviour import CudaBehaviour
from lib_train_tools.train.memory_estimate import OPTIMIZER_STATE_BYTES
from lib_train_tools.train.memory_trace import LiveBytes, TraceStopped
from lib_train_tools.train.optimizers import make_optimizer
from lib_train_tools.train.traced_estimate import (
    TraceCache,
    TraceSettings,
    optimizer_state_bytes,
    released_architecture,
    trace_training_step,
)

META, CPU = torch.device("meta"), torch.device("cpu")
pytestmark = pytest.mark.skipif(not torch_compat.storage_lifetimes_traceable(),
                                reason="this torch cannot be traced (torch_compat.storage_lifetimes_traceable)")


@pytest.fixture(params=["meta", "cpu"])
def device(request) -> torch.device:
    return torch.device(request.param)


# ---------------------------------------------------------------------------- the tracker


def test_allocations_views_and_frees_are_counted_exactly(device):
    with LiveBytes() as live:
        a = torch.ones(1000, device=device)            # 4000 bytes
        b = a.view(10, 100)                            # a view: no new storage
        c = a * 2                                      # 4000 more
        assert (live.current, live.peak, live.live_storages) == (8000, 8000, 2)
        del a
        assert live.current == 8000                    # b still holds the storage
        del b
        assert live.current == 4000
        d = torch.zeros(250, device=device, dtype=torch.float16)  # 500 bytes
        c.mul_(3)                                      # in place: nothing new
        assert (live.current, live.peak) == (4500, 8000)
        del c, d
        assert live.current == 0
    assert live.peak == 8000


def test_tensors_saved_for_backward_live_until_backward_frees_them(device):
    w = torch.ones(100, 100, device=device, requires_grad=True)
    with LiveBytes() as live:
        live.adopt([w])
        assert live.current == 40_000
        x = torch.ones(10, 100, device=device)         # 4000, saved by the matmul for w's gradient
        y = (x @ w).exp().sum()                        # mm out 4000 (freed), exp out 4000 (saved), sum 4
        del x
        assert live.current == 40_000 + 8004
        assert live.peak == 40_000 + 12_000
        y.backward()
        del y
        assert live.current == 40_000 + 40_000         # only w and its gradient are left
    assert w.grad is not None


def test_adopted_tensors_do_not_count_again_when_updated_in_place(device):
    w = torch.ones(256, device=device)
    view = w[:10]
    with LiveBytes() as live:
        assert live.adopt([w, view]) == 1024
        w.add_(1)
        w.t()
        assert (live.current, live.peak) == (1024, 1024)
    assert live.storage_bytes([w, w[1:], torch.ones(3)]) == 1024 + 12


def test_phases_keep_their_own_peaks():
    with LiveBytes() as live:
        live.phase("first")
        a = torch.ones(100, device="meta")
        del a
        live.phase("second")
        b = torch.ones(10, device="meta")
    assert [(p.name, p.peak_bytes) for p in live.phases] == [("first", 400), ("second", 40)]
    assert b.numel() == 10


def test_a_set_stop_event_ends_the_trace():
    stop = threading.Event()
    with LiveBytes(stop):
        torch.ones(3, device="meta")
        stop.set()
        with pytest.raises(TraceStopped):
            torch.ones(3, device="meta")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-RSS reset")
def test_the_tracker_agrees_with_the_processes_peak_resident_memory():
    """Every tensor is 64 MiB, above glibc's largest mmap threshold (32 MiB), so each one is mapped
    when made and unmapped when freed: the peak resident memory then follows the live tensors."""
    w = torch.ones((), requires_grad=True)
    x = torch.rand(16 * 2**20)

    def step() -> None:
        (x * w).exp().sin().sum().backward()
        w.grad = None

    step()  # warm the kernels
    with LiveBytes() as live:
        live.adopt([w, x])
        start = live.current
        step()
    traced = live.peak - start
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pytest.skip("cannot reset the peak RSS here")
    base = _status_bytes("VmRSS")
    step()
    measured = _status_bytes("VmHWM") - base
    assert traced >= 3 * 64 * 2**20
    assert abs(measured - traced) / traced < 0.10, (measured, traced)


def _status_bytes(key: str) -> int:
    match = re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert match
    return int(match.group(1)) * 1024


# ---------------------------------------------------------------------------- the traced step


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return {family: load_architecture(write_checkpoint(folder / f"{family}.safetensors", family=family))
            for family in ("sd1", "sdxl")}


def _close(meta: int, real: int) -> float:
    return abs(meta - real) / real


@pytest.mark.parametrize("family, settings", [
    ("sd1", TraceSettings(resolution=(64, 64), batch_size=2, network_dim=8, mixed_precision="no")),
    pytest.param("sd1", TraceSettings(resolution=(64, 64), network_dim=8, conv_dim=4, mixed_precision="bf16",
                                      gradient_checkpointing=True)),
    pytest.param("sdxl", TraceSettings(resolution=(64, 64), network_dim=4, mixed_precision="bf16",
                                       gradient_checkpointing=True, train_text_encoder=False,
                                       text_encoders_on_card=False, vae_each_step=True)),
])
def test_the_meta_trace_matches_the_same_step_on_real_tensors(tiny, family, settings):
    meta = trace_training_step(tiny[family], settings, META)
    real = trace_training_step(tiny[family], settings, CPU)
    assert meta.parts["weights"] == real.parts["weights"]
    assert meta.parts["lora"] == real.parts["lora"] > 0
    assert real.traced_bytes > 0
    assert _close(meta.traced_bytes, real.traced_bytes) < 0.10, (meta, real)


def test_the_checkpoint_fallback_traces_like_torchs_checkpoint(tiny, monkeypatch):
    """A1111's torch 2.1.2 and Forge's 2.3.1 cannot checkpoint meta tensors; the fallback that
    torch_compat uses there keeps the same tensors alive, so the traced peak is the same. (On those
    torches both traces take the fallback, and the real-tensor comparison above checks it.)"""
    settings = TraceSettings(resolution=(64, 64), network_dim=8, mixed_precision="bf16", gradient_checkpointing=True,
                             train_text_encoder=True)
    torch_way = trace_training_step(tiny["sdxl"], settings, META)
    monkeypatch.setattr(torch_compat, "checkpoint_runs_on_meta", lambda: False)
    fallback = trace_training_step(tiny["sdxl"], settings, META)
    assert _close(fallback.traced_bytes, torch_way.traced_bytes) < 0.02, (fallback, torch_way)
    assert fallback.activation_bytes < trace_training_step(
        tiny["sdxl"], TraceSettings(**{**settings.__dict__, "gradient_checkpointing": False}), META).activation_bytes


def test_released_sd15_widths_meta_against_real_at_a_small_latent():
    """The released SD1.5 U-Net (860M parameters, zero-filled) at 64x64 px (an 8x8 latent), batch 1."""
    arch = released_architecture("sd1")
    settings = TraceSettings(resolution=(64, 64), network_dim=32, mixed_precision="bf16", train_text_encoder=False,
                             text_encoders_on_card=False)
    meta = trace_training_step(arch, settings, META)
    real = trace_training_step(arch, settings, CPU)
    assert meta.parts["weights"] == real.parts["weights"] > 1500  # bfloat16 U-Net and VAE
    assert real.traced_bytes > 20 * 2**20
    assert _close(meta.traced_bytes, real.traced_bytes) < 0.10, (meta, real)


def test_checkpointing_and_mixed_precision_lower_the_traced_activations(tiny):
    arch = tiny["sd1"]
    base = TraceSettings(resolution=(128, 128), network_dim=8, mixed_precision="no", train_text_encoder=False)
    full = trace_training_step(arch, base, META).activation_bytes
    half = trace_training_step(arch, TraceSettings(**{**base.__dict__, "mixed_precision": "fp16"}), META)
    ckpt = trace_training_step(arch, TraceSettings(**{**base.__dict__, "gradient_checkpointing": True}), META)
    assert half.activation_bytes < 0.75 * full
    assert ckpt.activation_bytes < 0.5 * full
    assert half.parts["weights"] == pytest.approx(trace_training_step(arch, base, META).parts["weights"] / 2, abs=0.2)


def test_fp8_weights_count_one_byte_per_unet_weight(tiny):
    arch = tiny["sd1"]
    fp16 = trace_training_step(arch, TraceSettings(resolution=(64, 64), network_dim=4), META)
    fp8 = trace_training_step(arch, TraceSettings(resolution=(64, 64), network_dim=4,
                                                  weight_dtype=torch.float8_e4m3fn), META)
    both = trace_training_step(arch, TraceSettings(resolution=(64, 64), network_dim=4, weight_dtype=torch.float8_e4m3fn,
                                                   text_encoder_weight_dtype=torch.float8_e4m3fn), META)
    unet = sum(p.numel() for p in UNetModel(arch.unet).parameters()) / 2**20
    assert fp16.parts["weights"] - fp8.parts["weights"] == pytest.approx(unet, abs=0.1)  # 2 -> 1 byte each
    assert both.parts["weights"] < fp8.parts["weights"]
    assert fp8.activation_bytes == fp16.activation_bytes


@pytest.mark.parametrize("name", ["AdamW", "SGDNesterov"])
def test_the_optimizer_state_formula_matches_torchs_real_state(name):
    params = [torch.nn.Parameter(torch.zeros(1000)), torch.nn.Parameter(torch.zeros(30, 40))]
    optimizer = make_optimizer(name, params, 1e-3)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    state = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
                if isinstance(v, torch.Tensor) and v.numel() > 1)
    assert state == optimizer_state_bytes(name, 2200) == OPTIMIZER_STATE_BYTES[name] * 2200


def test_the_cache_traces_in_the_background_and_answers_from_memory(tiny):
    cache = TraceCache()
    settings = TraceSettings(resolution=(64, 64), network_dim=4, mixed_precision="no")
    assert cache.get(tiny["sd1"], settings) is None  # started on the worker thread
    worker = cache._worker
    if worker is not None:
        worker.join(timeout=120)
    done = cache.get(tiny["sd1"], settings)
    assert done is not None and done == cache.get(tiny["sd1"], settings, wait=True)
    cache.shut_down()


# ---------------------------------------------------------------------------- playing CUDA


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(64, device="meta", dtype=torch.float16)
        self.lora = torch.nn.Linear(64, 8, bias=False, device="meta")  # float32, like a LoRA down weight

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.norm(x), self.lora(x)


def test_autocast_is_played_inside_the_given_modules_only():
    block, x = _Block(), torch.zeros(2, 16, 64, device="meta", dtype=torch.float16)
    cuda = CudaBehaviour(torch.float16, "meta")
    cuda.autocast_in(block)
    with cuda:
        normed, projected = block(x)
        assert torch_compat.is_autocast_enabled("meta") is False  # only while the block runs
        assert torch.nn.functional.layer_norm(x, (64,)).dtype == torch.float16  # no cast outside it
    assert (normed.dtype, projected.dtype) == (torch.float32, torch.float16)  # CUDA's fp32 and fp16 lists


def test_attention_keeps_no_token_by_token_matrix():
    q = torch.zeros(1, 8, 4096, 64, device="meta", dtype=torch.float16, requires_grad=True)
    with LiveBytes() as live, CudaBehaviour(None, "meta"):
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    # the output and one float32 log-sum-exp per query and head; the math kernel would keep 8 x 4096^2
    assert live.peak == out.numel() * 2 + 8 * 4096 * 4


def test_emulated_autocast_answers_for_its_device_type_and_thread_only():
    assert torch_compat.is_autocast_enabled("meta") is False
    seen = []
    with torch_compat.emulated_autocast("meta"):
        assert torch_compat.is_autocast_enabled(torch.device("meta"))
        thread = threading.Thread(target=lambda: seen.append(torch_compat.is_autocast_enabled("meta")))
        thread.start()
        thread.join()
    assert seen == [False] and torch_compat.is_autocast_enabled("meta") is False


def test_the_cards_free_memory_is_read_only_once_cuda_runs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert torch_compat.cuda_memory_info() is None
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=0: (3 * 2**30, 12 * 2**30))
    assert torch_compat.cuda_memory_info() == (3 * 2**30, 12 * 2**30)
