"""DoRA, weight-decomposed low-rank adaptation (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank
Adaptation", eq. 5): the adapted weight is ``W' = m * (W + dW) / ||W + dW||``.

The norm and the stored magnitude ``m`` (``dora_scale``) follow the loaders that read the files,
AUTOMATIC1111 1.10's ``NetworkModule.apply_weight_decompose`` and Forge's ``weight_decompose``:
the norm is taken per INPUT column, over the output channels and the kernel window (the weight
transposed to ``[in, out * k * k]``, one norm per row), and ``dora_scale`` is stored as
``[1, in]`` for a Linear and ``[1, in, 1, 1]`` for a Conv2d, i.e. the layer weight's shape with
every axis but the input axis collapsed to 1. (LyCORIS calls this layout ``wd_on_output=False``;
its other layout, ``[out, 1]``, is misapplied by A1111 1.10 and is not written here.)

Both WebUIs apply a file at strength ``s`` as ``W + s * (W' - W)``; ``decomposed_delta`` returns
exactly that change, so ``<lora:X:1>`` reproduces the trained weight.
"""
from __future__ import annotations

import torch
from torch import Tensor


def input_column_norm(weight: Tensor) -> Tensor:
    """``||W[:, j, ...]||`` for every input column j, shaped ``[1, in, 1, ...]`` to broadcast against W."""
    columns = weight.transpose(0, 1).reshape(weight.shape[1], -1)
    norm = columns.norm(dim=1)
    return norm.reshape(1, weight.shape[1], *([1] * (weight.ndim - 2)))


def initial_magnitude(weight: Tensor) -> Tensor:
    """The starting ``dora_scale`` of a layer: its own column norms (so W' = W before training), float32."""
    return input_column_norm(weight.detach().float())


def decomposed_delta(weight: Tensor, delta: Tensor, magnitude: Tensor, multiplier: float = 1.0) -> Tensor:
    """``multiplier * (m * (W + dW) / ||W + dW|| - W)``, in float32, in W's shape.

    ``weight`` is the frozen layer weight, ``delta`` the adapter's scaled change dW (any shape with
    W's number of elements), ``magnitude`` the ``dora_scale``.
    """
    base = weight.detach().float()
    merged = base + delta.float().reshape(base.shape)
    adapted = merged * (magnitude.float().reshape(input_column_norm(merged).shape) / input_column_norm(merged))
    return (adapted - base) * multiplier


def check_magnitude_shape(magnitude: Tensor, weight: Tensor, what: str) -> Tensor:
    """A file's ``dora_scale`` in the ``[1, in, 1, ...]`` shape of ``weight``; ValueError when it is not one."""
    want = (1, weight.shape[1], *([1] * (weight.ndim - 2)))
    if magnitude.numel() == weight.shape[1] and (magnitude.ndim < 2 or magnitude.shape[0] == 1):
        return magnitude.reshape(want)
    raise ValueError(f"{what} has shape {list(magnitude.shape)}; a dora_scale for this layer is {list(want)} "
                     "(the per-input-column norm A1111 and Forge apply; the [out, 1] layout is not supported)")


def magnitude_parameter(weight: Tensor) -> torch.nn.Parameter:
    """A trainable ``dora_scale`` initialised from ``weight``, on its device."""
    return torch.nn.Parameter(initial_magnitude(weight).to(weight.device))
