"""Frozen Linear / Conv2d weights stored as float8 (e4m3fn) and computed in the working precision.

sd-scripts' ``fp8_base`` (and ``fp8_base_unet``, the U-Net only): the base model's frozen weights
take one byte each instead of two, and every layer casts its weight back to the working precision
(float16 / bfloat16, the dtype the weight had when it was stored) right before its matmul or
convolution. The cast is exact, so a layer computes precisely what it would with the fp8-rounded
weight in the working precision; the only error is that rounding. e4m3fn keeps 3 mantissa bits,
so a normal value moves by at most 2**-4 of itself (half a step of 2**-3); values below 2**-6 are
subnormal with a fixed step of 2**-9, and magnitudes above 448 do not fit (``store_fp8`` refuses
such a weight rather than saturate it).

Only Linear and Conv2d weights are stored this way: they are nearly all of the bytes. Biases, norm
layers and embeddings stay in the working precision (sd-scripts puts the text encoders' embeddings
back to it as well). The layers' forward goes through autograd functions that keep only the fp8
weight for the backward pass and cast it again there, so training never holds a second,
working-precision copy of the weights.

A LoRA hook installed later wraps the layer's forward, so it sees this upcasting forward as the
base layer's; code that reads ``layer.weight`` itself reads the fp8 tensor (``compute_dtype``
gives the dtype the layer computes in).
"""
from __future__ import annotations

import functools
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.grad import conv2d_input

from .. import torch_compat

E4M3_MAX = 448.0  # the largest finite float8_e4m3fn magnitude
E4M3_RELATIVE_ERROR = 2.0 ** -4  # half a step of a 3-bit mantissa, relative to the value (normal range)
E4M3_SUBNORMAL_STEP = 2.0 ** -9  # the spacing below the smallest normal 2**-6
_COMPUTE_DTYPE = "fp8_compute_dtype"  # the layer attribute holding the working precision


class _UpcastLinear(torch.autograd.Function):
    """``F.linear(x, W.to(dtype), b)`` that saves the fp8 ``W`` (not its upcast copy) for backward."""

    @staticmethod
    def forward(ctx, x: Tensor, stored: Tensor, bias: Tensor | None, dtype: torch.dtype) -> Tensor:
        ctx.save_for_backward(stored)
        ctx.input_dtype = x.dtype
        return F.linear(x, stored.to(dtype), bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (stored,) = ctx.saved_tensors
        grad_x = (grad @ stored.to(grad.dtype)).to(ctx.input_dtype) if ctx.needs_input_grad[0] else None
        grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, None, grad_bias, None


class _UpcastConv2d(torch.autograd.Function):
    """``F.conv2d`` with ``W.to(dtype)`` that saves the fp8 ``W`` for backward (zero padding only)."""

    @staticmethod
    def forward(ctx, x: Tensor, stored: Tensor, bias: Tensor | None, dtype: torch.dtype, stride, padding,
                dilation, groups: int) -> Tensor:
        ctx.save_for_backward(stored)
        ctx.input_shape, ctx.input_dtype = x.shape, x.dtype
        ctx.geometry = (stride, padding, dilation, groups)
        return F.conv2d(x, stored.to(dtype), bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (stored,) = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = conv2d_input(ctx.input_shape, stored.to(grad.dtype), grad, stride, padding, dilation,
                                  groups).to(ctx.input_dtype)
        grad_bias = grad.sum((0, 2, 3)) if ctx.needs_input_grad[2] else None
        return grad_x, None, grad_bias, None, None, None, None, None


def _fp8_dtype() -> torch.dtype:
    dtype = torch_compat.float8_storage_dtype()
    if dtype is None:
        raise RuntimeError(torch_compat.fp8_storage_problem("cuda") or "this torch has no float8 type")
    return dtype


def is_stored_fp8(layer: nn.Module) -> bool:
    """True when ``layer``'s weight is stored as float8 by ``store_fp8``."""
    return _COMPUTE_DTYPE in layer.__dict__


def compute_dtype(layer: nn.Linear | nn.Conv2d) -> torch.dtype:
    """The dtype ``layer`` computes in: its weight's, or the working precision of an fp8-stored one."""
    return cast(torch.dtype, layer.__dict__.get(_COMPUTE_DTYPE, layer.weight.dtype))


def linear_forward(layer: nn.Linear, x: Tensor) -> Tensor:
    """``layer(x)`` with the stored fp8 weight cast to the layer's working precision."""
    return _UpcastLinear.apply(x, layer.weight, layer.bias, compute_dtype(layer))


def conv_forward(layer: nn.Conv2d, x: Tensor) -> Tensor:
    """``layer(x)`` with the stored fp8 weight cast to the layer's working precision."""
    if layer.padding_mode != "zeros" or isinstance(layer.padding, str):  # torch's own padding, upcast copy kept
        return layer._conv_forward(x, layer.weight.to(compute_dtype(layer)), layer.bias)
    return _UpcastConv2d.apply(x, layer.weight, layer.bias, compute_dtype(layer), layer.stride, layer.padding,
                               layer.dilation, layer.groups)


def _store_layer(layer: nn.Linear | nn.Conv2d, name: str, fp8: torch.dtype) -> None:
    weight = layer.weight
    if weight.requires_grad:
        raise ValueError(f"fp8 storage: {name}.weight is trained; only frozen weights can be stored as float8")
    # a meta tensor (a memory trace) has no values to check
    largest = float(weight.detach().abs().max()) if weight.numel() and not weight.is_meta else 0.0
    if not largest <= E4M3_MAX:  # also catches NaN
        raise ValueError(f"fp8 storage: {name}.weight has a magnitude of {largest:g}, beyond float8_e4m3fn's "
                         f"{E4M3_MAX:g}")
    layer.__dict__[_COMPUTE_DTYPE] = weight.dtype
    layer.weight = nn.Parameter(weight.detach().to(fp8), requires_grad=False)
    forward = linear_forward if isinstance(layer, nn.Linear) else conv_forward
    # An instance attribute shadowing the class's forward, on purpose (mypy forbids assigning to a method);
    # a LoRA hook applied later keeps it as the base layer's forward.
    layer.forward = functools.partial(forward, layer)  # type: ignore[method-assign, assignment, arg-type]


def store_fp8(model: nn.Module) -> int:
    """Store every frozen Linear / Conv2d weight of ``model`` as float8_e4m3fn; returns how many.

    Call it before a LoRA network is applied to ``model`` and after the model is in its working
    precision and on its device. Layers already stored are left alone.
    """
    fp8 = _fp8_dtype()
    count = 0
    for name, layer in model.named_modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)) and not is_stored_fp8(layer):
            _store_layer(layer, name, fp8)
            count += 1
    return count


def fp8_weight_bytes(model: nn.Module) -> int:
    """Bytes held by the float8 weights of ``model``."""
    weights = [cast(Tensor, layer.weight) for layer in model.modules() if is_stored_fp8(layer)]
    return sum(weight.numel() * weight.element_size() for weight in weights)
