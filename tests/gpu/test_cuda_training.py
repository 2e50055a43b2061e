"""What only a CUDA GPU can show: training in fp16 / bf16, autocast and the gradient scaler, and our U-Net's
half-precision numbers. Every test carries the ``cuda`` marker; tests/conftest.py skips them where
``torch.cuda.is_available()`` is False, and ``benchmarks/gpu_check.py`` runs them with ``pytest -m cuda``.
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from lib_train_tools import torch_compat
from lib_train_tools.models.unet import TINY_SD1_UNET, TINY_SDXL_UNET, UNetConfig, UNetModel
from lib_train_tools.train.cli import main
from tests.train.test_training_run import events, make_dataset, run_args, tiny_ckpt  # noqa: F401

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")


def _needs_bf16() -> None:
    if not torch_compat.bf16_hardware(CUDA):
        pytest.skip("this GPU has no native bfloat16")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_tiny_training_on_cuda_gives_finite_losses_memory_and_a_lora(tiny_ckpt, tmp_path, precision):  # noqa: F811
    if precision == "bf16":
        _needs_bf16()
    data, out = make_dataset(tmp_path), tmp_path / "out"
    code = main(run_args(tiny_ckpt, data, out, device="cuda", mixed_precision=precision, max_train_steps=6,
                         cache_latents=True, gradient_checkpointing=True))
    assert code == 0
    got = events(out)
    assert got[0].type == "start" and got[0].device == "cuda"
    steps = [e for e in got if e.type == "step"]
    assert len(steps) == 6
    assert all(e.loss is not None and math.isfinite(e.loss) for e in steps)
    assert all(e.memory_mb is not None and e.memory_mb > 0 for e in steps)  # max_memory_allocated
    assert got[-1].type == "done" and got[-1].status == "completed"
    tensors = load_file(str(out / "tiny.safetensors"))
    ups = [v for k, v in tensors.items() if k.endswith("lora_up.weight")]
    assert ups and all(torch.isfinite(v.float()).all() for v in tensors.values())
    assert any(v.float().abs().sum() > 0 for v in ups)  # the up weights moved off zero: the optimizer stepped


def test_adamw_8bit_trains_on_cuda(tiny_ckpt, tmp_path):  # noqa: F811
    pytest.importorskip("bitsandbytes")
    data, out = make_dataset(tmp_path), tmp_path / "out"
    assert main(run_args(tiny_ckpt, data, out, device="cuda", mixed_precision="fp16", max_train_steps=3,
                         optimizer_type="AdamW8bit")) == 0
    assert all(math.isfinite(e.loss) for e in events(out) if e.type == "step")


def test_autocast_on_cuda_runs_matmuls_in_the_asked_dtype():
    a, b = torch.randn(8, 8, device=CUDA), torch.randn(8, 8, device=CUDA)
    with torch_compat.autocast(CUDA, torch.float16, enabled=True):
        assert torch_compat.is_autocast_enabled(CUDA) is True
        assert (a @ b).dtype == torch.float16
    assert torch_compat.is_autocast_enabled(CUDA) is False
    with torch_compat.autocast(CUDA, torch.float16, enabled=False):
        assert (a @ b).dtype == torch.float32


def test_grad_scaler_on_cuda_scales_then_skips_an_overflowing_step():
    weight = torch.nn.Parameter(torch.ones(4, device=CUDA))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch_compat.grad_scaler(CUDA)
    assert scaler.is_enabled()
    scale = scaler.get_scale()
    loss = (weight * 2).sum()
    assert scaler.scale(loss).item() == pytest.approx(loss.item() * scale)

    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert torch.allclose(weight.detach(), torch.full((4,), 1 - 0.1 * 2, device=CUDA))  # unscaled gradient 2

    optimizer.zero_grad()
    before = weight.detach().clone()
    scaler.scale((weight * float("inf")).sum()).backward()
    scaler.step(optimizer)  # an inf gradient: the step is skipped ...
    scaler.update()
    assert torch.equal(weight.detach(), before)
    assert scaler.get_scale() == pytest.approx(scale / 2)  # ... and the scale backs off


@pytest.mark.parametrize("cfg", [TINY_SD1_UNET, TINY_SDXL_UNET], ids=["sd1", "sdxl"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_unet_in_half_precision_on_cuda_matches_float32(cfg: UNetConfig, dtype: torch.dtype):
    if dtype == torch.bfloat16:
        _needs_bf16()
    torch.manual_seed(0)
    unet = UNetModel(cfg).to(CUDA).eval()
    x = torch.randn(2, cfg.in_channels, 16, 16, device=CUDA)
    t = torch.tensor([10, 700], device=CUDA)
    context = torch.randn(2, 77, cfg.context_dim, device=CUDA)
    y = torch.randn(2, cfg.adm_in_channels, device=CUDA) if cfg.adm_in_channels else None
    with torch.no_grad():  # float64 reference: no TF32 convolutions, so the error measured is the half one
        reference = unet.double()(x.double(), t, context.double(), None if y is None else y.double())
        half = unet.to(dtype)(x, t, context, y)
    assert half.dtype == torch.float32  # the output comes back in the input's dtype
    assert torch.isfinite(half).all()
    relative = ((half.double() - reference).norm() / reference.norm()).item()
    assert relative < (5e-2 if dtype == torch.bfloat16 else 1e-2), relative


def test_gradient_checkpointing_on_cuda_gives_the_same_gradients():
    torch.manual_seed(0)
    unet = UNetModel(TINY_SD1_UNET).to(CUDA)
    x = torch.randn(1, 4, 16, 16, device=CUDA)
    t, context = torch.tensor([500], device=CUDA), torch.randn(1, 77, TINY_SD1_UNET.context_dim, device=CUDA)

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        unet.zero_grad(set_to_none=True)
        unet.gradient_checkpointing = checkpointing
        unet(x, t, context).square().mean().backward()
        return [p.grad.clone() for p in unet.parameters() if p.grad is not None]

    plain, checkpointed = grads(False), grads(True)
    assert len(plain) == len(checkpointed) == len(list(unet.parameters()))
    # the same kernels run twice; only the order of CUDA's atomic gradient sums may differ
    assert all((a - b).norm() <= 1e-4 * a.norm() + 1e-7 for a, b in zip(plain, checkpointed))


def test_cuda_peak_memory_counters_track_an_allocation():
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    block = torch.empty(64 * 2**20, dtype=torch.uint8, device=CUDA)  # 64 MiB
    assert torch.cuda.max_memory_allocated() >= block.numel()
    assert torch.cuda.max_memory_reserved() >= torch.cuda.max_memory_allocated()
