"""What CUDA does differently from the meta device, re-enacted for the memory trace.

A traced training step runs our real model code on meta tensors (``traced_estimate.py``), but two
things that decide a GPU's memory happen only on CUDA, so `CudaBehaviour` (a ``TorchFunctionMode``,
active around the step's forward, loss and backward) plays them:

* **Autocast** (mixed precision), inside the modules `CudaBehaviour.autocast_in` names (the U-Net,
  as the loop autocasts only its forward). torch has no autocast for meta tensors, so the casts
  CUDA's autocast makes are made here, above autograd exactly as autocast makes them (a cast is an
  autograd node; what a layer saves for backward is the cast copy). The op lists are the CUDA ones
  of torch's "Automatic Mixed Precision" documentation (``torch.amp``), limited to the functions
  our models and losses call: `LOWER_PRECISION` run in the half dtype (fp32 inputs, such as the
  float32 LoRA weights, are cast down), `FULL_PRECISION` in float32 (half inputs cast up). The
  LoRA modules ask ``torch_compat.is_autocast_enabled`` whether to cast their input themselves;
  ``torch_compat.emulated_autocast`` answers yes as the real autocast would.
* **Fused attention**. On CUDA ``scaled_dot_product_attention`` runs FlashAttention (half
  precision) or the memory-efficient kernel (float32), which keep no [tokens x tokens] matrix: the
  forward saves q, k, v, the output and one float32 log-sum-exp per query and head, and the
  backward returns dq, dk, dv (Dao et al. 2022, "FlashAttention", section 3.1; Rabe & Staats 2021,
  "Self-attention Does Not Need O(n^2) Memory"). The meta device would pick the math kernel, which
  stores the whole attention matrix, so `FusedAttentionMemory` stands in: same outputs' shapes,
  same saved tensors, zeros for values (only memory is measured).

With ``dtype`` None (no mixed precision) only the attention stands in.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from contextlib import ExitStack

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .. import torch_compat

LOWER_PRECISION = frozenset({
    F.linear, F.conv1d, F.conv2d, F.conv3d, F.conv_transpose2d, torch.conv2d, torch.matmul, torch.mm,
    torch.bmm, torch.baddbmm, torch.addmm, torch.addbmm, torch.Tensor.matmul, torch.Tensor.__matmul__,
    torch.Tensor.__rmatmul__,
})
FULL_PRECISION = frozenset({
    F.layer_norm, torch.layer_norm, F.group_norm, torch.group_norm, F.softmax, torch.softmax, torch.Tensor.softmax,
    F.log_softmax, torch.exp, torch.Tensor.exp, torch.pow, torch.Tensor.pow, torch.Tensor.__pow__, F.mse_loss,
    F.l1_loss, F.smooth_l1_loss, F.huber_loss, torch.sum, torch.Tensor.sum, torch.cumsum, torch.rsqrt, torch.log,
})
HALF = (torch.float16, torch.bfloat16)
BACKWARD = frozenset({torch.Tensor.backward, torch.autograd.backward, torch.autograd.grad})


class FusedAttentionMemory(torch.autograd.Function):
    """The memory behaviour of CUDA's fused attention kernels (module docstring), values zero."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # type: ignore[override]
        out = q.new_zeros(*q.shape[:-1], v.shape[-1])
        logsumexp = q.new_zeros(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, logsumexp)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        q, k, v, _, _ = ctx.saved_tensors
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)


def _cast(value, dtype: torch.dtype, source: tuple[torch.dtype, ...]):
    if isinstance(value, Tensor) and value.is_floating_point() and value.dtype in source and value.dtype != dtype:
        return value.to(dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype, source) for v in value)
    return value


class CudaBehaviour(TorchFunctionMode):
    """Fused attention everywhere, and autocast to ``dtype`` inside the modules given to
    `autocast_in` (module docstring); ``dtype`` None: no autocast."""

    def __init__(self, dtype: torch.dtype | None, device_type: str) -> None:
        super().__init__()
        if dtype is not None and dtype not in HALF:
            raise ValueError(f"autocast runs in float16 or bfloat16, not {dtype}")
        self.dtype = dtype
        self.device_type = device_type
        self._depth = 0
        self._flag = ExitStack()
        self._in_backward = False
        self._repushed = False

    def autocast_in(self, module: nn.Module) -> None:
        """Autocast whenever ``module`` runs, its recomputation by gradient checkpointing included.

        The training loop autocasts the U-Net's forward only (``loop.optimizer_step``); checkpointing
        re-runs each block in the backward pass under the autocast state of its forward, so every
        checkpointed block is given here too."""
        self.cover(module, autocast=True)

    def cover(self, module: nn.Module, autocast: bool = False) -> None:
        """Play CUDA in ``module`` also when gradient checkpointing re-runs it in the backward pass.

        torch turns a function mode off while it handles ``backward()`` (this mode passes it on),
        so the wrapper turns the mode back on for the re-run; try/finally because checkpointing may
        stop a re-run half way by raising."""
        inner = module.forward

        @functools.wraps(inner)
        def forward(*args, **kwargs):
            repush = self._in_backward and not self._repushed
            with self._repush() if repush else contextlib.nullcontext():
                if autocast:
                    self._enter()
                try:
                    return inner(*args, **kwargs)
                finally:
                    if autocast:
                        self._leave()

        module.forward = forward  # type: ignore[method-assign]

    @contextlib.contextmanager
    def _repush(self) -> Iterator[None]:
        self._repushed = True
        try:
            with self:
                yield
        finally:
            self._repushed = False

    def _enter(self) -> None:
        if self._depth == 0 and self.dtype is not None:
            self._flag.enter_context(torch_compat.emulated_autocast(self.device_type))
        self._depth += 1

    def _leave(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._flag.close()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in BACKWARD:  # checkpointed modules re-run in there: `cover` turns the mode back on
            self._in_backward = True
            try:
                return func(*args, **kwargs)
            finally:
                self._in_backward = False
        casting = self.dtype is not None and self._depth > 0
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            if casting:
                assert self.dtype is not None
                q, k, v = _cast((q, k, v), self.dtype, (torch.float32,))
            return FusedAttentionMemory.apply(q, k, v)
        if casting and func in LOWER_PRECISION:
            assert self.dtype is not None
            args, kwargs = _cast(args, self.dtype, (torch.float32,)), {
                key: _cast(value, self.dtype, (torch.float32,)) for key, value in kwargs.items()}
        elif casting and func in FULL_PRECISION:
            args, kwargs = _cast(args, torch.float32, HALF), {
                key: _cast(value, torch.float32, HALF) for key, value in kwargs.items()}
        return func(*args, **kwargs)
