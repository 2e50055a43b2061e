"""A cheaper backward pass for frozen convolutions on the CPU at small spatial sizes.

LoRA training leaves the U-Net's own convolution weights frozen, so their backward pass only has
to produce the gradient of the input. PyTorch's CPU kernel for that (``slow_conv2d_backward``)
multiplies by the transposed weight matrix, which reads a wide layer's weights in an order the
memory system handles badly; when a feature map has few positions (the deepest U-Net levels: 4x4
at 128 px, 8x8 at 512 px) reading the weights is the whole cost, and it takes about twice as long
as the forward pass. Here the same gradient is one matrix product that streams the weight rows
(grad_output^T @ W), followed by ``fold`` (the inverse of the im2col the forward used): for
SD1.5's 1280-channel layers at 4x4 that is 1.6-2x faster, and the training step at 128 px about 9%
faster (benchmarks/bench_train.py). Larger maps keep PyTorch's kernel, which wins there.

``install(model)`` routes every eligible ``nn.Conv2d`` of ``model`` through ``conv_forward``, which
picks this path per call only when it applies (CPU, float32 without autocast, frozen weight and
bias, an input that needs a gradient, at most ``MAX_POSITIONS`` output positions in the batch).
"""

from __future__ import annotations

import functools
from typing import TypeGuard, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import torch_compat

MAX_POSITIONS = 64  # batch x height x width of the output; measured break-even for 640-1280 channels


class _FrozenWeightConv(torch.autograd.Function):
    """conv2d whose backward returns only the input's gradient, as grad^T @ W and fold."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride, padding, dilation) -> Tensor:
        ctx.save_for_backward(weight)
        ctx.input_size = tuple(x.shape[-2:])
        ctx.geometry = (stride, padding, dilation)
        return F.conv2d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (weight,) = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        batch, channels_out = grad.shape[:2]
        positions = grad.shape[2] * grad.shape[3]
        rows = grad.reshape(batch, channels_out, positions).transpose(1, 2).reshape(batch * positions, channels_out)
        columns = (rows @ weight.reshape(channels_out, -1)).reshape(batch, positions, -1).transpose(1, 2)
        grad_input = F.fold(columns, ctx.input_size, kernel_size=weight.shape[2:], dilation=dilation,
                            padding=padding, stride=stride)
        return grad_input, None, None, None, None, None


def _applies(layer: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    if x.device.type != "cpu" or not x.requires_grad or weight.requires_grad:
        return False
    if bias is not None and bias.requires_grad:
        return False
    if x.dtype != torch.float32 or weight.dtype != torch.float32 or torch_compat.is_autocast_enabled("cpu"):
        return False
    return x.dim() == 4 and x.shape[0] * _output_size(layer, x, 0) * _output_size(layer, x, 1) <= MAX_POSITIONS


def _output_size(layer: nn.Conv2d, x: Tensor, axis: int) -> int:
    reach = layer.dilation[axis] * (layer.kernel_size[axis] - 1) + 1
    padding = cast("tuple[int, ...]", layer.padding)  # eligible() leaves out string padding ("same")
    return (x.shape[2 + axis] + 2 * padding[axis] - reach) // layer.stride[axis] + 1


def conv_forward(layer: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``nn.Conv2d._conv_forward`` with the cheaper frozen-weight backward where it applies."""
    if _applies(layer, x, weight, bias):
        return _FrozenWeightConv.apply(x, weight, bias, layer.stride, layer.padding, layer.dilation)
    return nn.Conv2d._conv_forward(layer, x, weight, bias)


def eligible(layer: nn.Module) -> TypeGuard[nn.Conv2d]:
    return (type(layer) is nn.Conv2d and layer.groups == 1 and layer.padding_mode == "zeros"
            and not isinstance(layer.padding, str))


def install(model: nn.Module) -> int:
    """Give every eligible convolution of ``model`` the frozen-weight path; returns how many."""
    count = 0
    for layer in model.modules():
        if eligible(layer):
            # An instance attribute shadowing Conv2d._conv_forward, on purpose (mypy forbids assigning to a method).
            layer._conv_forward = functools.partial(conv_forward, layer)  # type: ignore[method-assign]
            count += 1
    return count
