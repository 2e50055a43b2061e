"""The frozen-weight convolution backward gives PyTorch's input gradient, and only where it applies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lib_train_tools.train import frozen_conv


def _input_grad(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    layer(x).backward(grad)
    return x.grad


@pytest.mark.parametrize(("channels", "kernel", "stride", "padding", "dilation", "batch", "size"), [
    ((64, 96), 3, 1, 1, 1, 1, 4),
    ((64, 96), 3, 1, 1, 1, 2, 4),
    ((32, 48), 3, 2, 1, 1, 2, 8),  # a downsampler: output 4x4
    ((32, 16), 1, 1, 0, 1, 1, 8),  # a 1x1 skip projection
    ((16, 16), 3, 1, 2, 2, 1, 6),
    ((16, 24), (3, 1), 1, (1, 0), 1, 1, 5),
])
def test_input_gradient_equals_pytorch(channels, kernel, stride, padding, dilation, batch, size):
    torch.manual_seed(0)
    reference = nn.Conv2d(*channels, kernel, stride=stride, padding=padding, dilation=dilation).requires_grad_(False)
    ours = nn.Conv2d(*channels, kernel, stride=stride, padding=padding, dilation=dilation).requires_grad_(False)
    ours.load_state_dict(reference.state_dict())
    assert frozen_conv.install(ours) == 1
    x = torch.randn(batch, channels[0], size, size)
    out = reference(x)
    grad = torch.randn_like(out)
    calls = []
    original = frozen_conv._FrozenWeightConv.apply
    frozen_conv._FrozenWeightConv.apply = lambda *a: calls.append(1) or original(*a)
    try:
        ours_grad = _input_grad(ours, x, grad)
    finally:
        frozen_conv._FrozenWeightConv.apply = original
    assert calls == [1]  # the cheaper path ran
    torch.testing.assert_close(ours(x), out, rtol=0, atol=0)
    torch.testing.assert_close(ours_grad, _input_grad(reference, x, grad), rtol=1e-5, atol=1e-5)


def test_falls_back_when_it_does_not_apply():
    torch.manual_seed(0)
    layer = nn.Conv2d(8, 8, 3, padding=1)
    frozen_conv.install(layer)
    seen = []
    original = frozen_conv._FrozenWeightConv.apply
    frozen_conv._FrozenWeightConv.apply = lambda *a: seen.append(1) or original(*a)
    try:
        x = torch.randn(1, 8, 4, 4, requires_grad=True)
        layer(x).sum().backward()  # trainable weight: its gradient must still be computed
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
        layer.requires_grad_(False)
        layer(torch.randn(1, 8, 4, 4)).sum()  # input without gradient
        layer(torch.randn(1, 8, 9, 9, requires_grad=True)).sum()  # 81 positions > MAX_POSITIONS
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layer(torch.randn(1, 8, 4, 4, requires_grad=True))  # mixed precision keeps PyTorch's kernels
        assert seen == []
        layer(torch.randn(1, 8, 4, 4, requires_grad=True))  # float32, frozen, 16 positions
        assert seen == [1]
    finally:
        frozen_conv._FrozenWeightConv.apply = original


def test_install_skips_grouped_and_same_padded_convolutions():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, groups=2),
                          nn.Conv2d(4, 4, 3, padding="same"), nn.Linear(4, 4))
    assert frozen_conv.install(model) == 1
    assert "_conv_forward" in model[0].__dict__ and "_conv_forward" not in model[1].__dict__
