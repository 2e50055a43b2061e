"""One LoRA adapter: a low-rank branch added to the output of a Linear or Conv2d layer.

``y = layer(x) + lora_up(lora_down(x)) * multiplier * alpha / rank``. The adapter does not replace
the layer in the model tree: ``apply()`` installs its forward on the layer instance and ``remove()``
takes it away again, so the model's own ``state_dict`` keys never change and the adapter's
``state_dict`` holds only ``lora_down.weight``, ``lora_up.weight`` and ``alpha`` (kohya's keys).

With ``weight_decompose`` (DoRA, LyCORIS' ``dora_wd``) it also holds ``dora_scale`` and the branch
becomes the weight change ``dora.decomposed_delta`` of ``dW = lora_up @ lora_down * alpha / rank``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import torch_compat
from . import dora
from .layer_hook import LayerHook
from .weight_adapter import layer_op


class LinearAsConv1x1(nn.Module):
    """A bias-free Linear whose weight is kept in 1x1-convolution layout ``[out, in, 1, 1]``.

    kohya writes SD2's Linear ``proj_in``/``proj_out`` LoRAs this way; keeping the layout in the
    parameter itself makes ``state_dict`` and loading need no reshaping step.
    """

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features, 1, 1, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.flatten(1))


Projection = nn.Linear | nn.Conv2d | LinearAsConv1x1


class LoRAModule(LayerHook, nn.Module):  # type: ignore[misc]  # apply() shadows Module.apply on purpose
    """A LoRA (LoCon for kxk convolutions) branch for one ``nn.Linear`` or ``nn.Conv2d``."""

    lora_down: Projection
    lora_up: Projection
    alpha: Tensor                  # a buffer
    dora_scale: nn.Parameter | None
    layer: nn.Linear | nn.Conv2d   # set through __dict__ (see __init__); _make_projections rejects other layers
    _base_forward: Callable[[Tensor], Tensor] | None

    def __init__(self, name: str, layer: nn.Module, rank: int, alpha: float | None = None,
                 multiplier: float = 1.0, dropout: float = 0.0, rank_dropout: float = 0.0,
                 module_dropout: float = 0.0, store_as_conv: bool = False,
                 dtype: torch.dtype = torch.float32, weight_decompose: bool = False) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"{name}: LoRA rank must be >= 1, got {rank}")
        self.lora_name = name
        self.rank = rank
        self.multiplier = multiplier
        self.dropout = dropout
        self.rank_dropout = rank_dropout
        self.module_dropout = module_dropout
        device = cast(Tensor, layer.weight).device
        self.lora_down, self.lora_up = _make_projections(layer, rank, store_as_conv, device, dtype)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)
        # alpha 0/None means "no scaling" (scale 1), as in kohya.
        alpha = float(rank) if not alpha else float(alpha)
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32, device=device))
        # A plain attribute, not a submodule: the base layer's weights must stay out of our state_dict.
        self.__dict__["layer"] = layer
        self.dora_scale = dora.magnitude_parameter(cast(Tensor, layer.weight)) if weight_decompose else None
        self._base_forward = None
        self._had_instance_forward = False

    @property
    def is_conv(self) -> bool:
        return self.lora_down.weight.ndim == 4

    def forward(self, x: Tensor) -> Tensor:
        if self._base_forward is None:
            raise RuntimeError(f"{self.lora_name}: LoRA module called before apply()")
        y = self._base_forward(x)
        if self.multiplier == 0:
            return y
        if self.training and self.module_dropout and torch.rand(()) < self.module_dropout:
            return y
        if self.dora_scale is not None:
            return y + self._dora_branch(x).to(y.dtype)
        weight = self.lora_down.weight
        if x.dtype != weight.dtype and not torch_compat.is_autocast_enabled(x.device):
            x = x.to(weight.dtype)
        h = self.lora_down(x)
        scale = self.multiplier / self.rank
        if self.training:
            h, keep = self._drop(h)
            scale = scale / keep
        return y + (self.lora_up(h) * (self.alpha * scale)).to(y.dtype)

    def _drop(self, h: Tensor) -> tuple[Tensor, float]:
        """Neuron and rank dropout; returns the new h and the kept fraction to rescale by."""
        if self.dropout:
            h = F.dropout(h, p=self.dropout)
        if not self.rank_dropout:
            return h, 1.0
        # One keep/drop decision per sample and rank channel, shared by all tokens / pixels.
        mask = torch.rand(h.shape[0], self.rank, device=h.device) > self.rank_dropout
        if self.is_conv:
            mask = mask[:, :, None, None]
        else:
            mask = mask.reshape(h.shape[0], *([1] * (h.ndim - 2)), self.rank)
        return h * mask.to(h.dtype), 1.0 - self.rank_dropout

    def _dora_branch(self, x: Tensor) -> Tensor:
        """DoRA: ``op(x, decomposed change)``; rank dropout drops rank channels of dW for the whole batch."""
        assert self.dora_scale is not None  # forward() calls this for DoRA modules only
        up, down = self.lora_up.weight.flatten(1), self.lora_down.weight.flatten(1)
        scale = self.alpha / self.rank
        if self.training and self.rank_dropout:
            keep = torch.rand(self.rank, device=up.device) > self.rank_dropout
            up, scale = up * keep.to(up.dtype), scale / (1.0 - self.rank_dropout)
        change = dora.decomposed_delta(self.layer.weight, up @ down * scale.to(up.dtype), self.dora_scale,
                                       self.multiplier)
        if not torch_compat.is_autocast_enabled(x.device):
            change = change.to(x.dtype)
        return layer_op(self.layer, x, change)

    @torch.no_grad()
    def delta_weight(self) -> Tensor:
        """The change of the wrapped layer's weight this adapter stands for (float32, at its multiplier)."""
        down = self.lora_down.weight.float().flatten(1)       # [r, in * k * k]
        up = self.lora_up.weight.float().flatten(1)           # [out, r]
        if self.dora_scale is not None:
            delta = up @ down * (float(self.alpha) / self.rank)
            return dora.decomposed_delta(self.layer.weight, delta, self.dora_scale, self.multiplier)
        scale = self.multiplier * float(self.alpha) / self.rank
        return (up @ down * scale).reshape(self.layer.weight.shape)

    @torch.no_grad()
    def merge(self) -> None:
        """Add ``delta_weight()`` into the wrapped layer's weight and stop adding the branch."""
        self.remove()
        weight = self.layer.weight
        weight.add_(self.delta_weight().to(device=weight.device, dtype=weight.dtype))

    def extra_repr(self) -> str:
        alpha = "?" if self.alpha.is_meta else f"{float(self.alpha):g}"
        return (f"{self.lora_name}, rank={self.rank}, alpha={alpha}, multiplier={self.multiplier}"
                f"{', dora' if self.dora_scale is not None else ''}")


def _make_projections(layer: nn.Module, rank: int, store_as_conv: bool, device,
                      dtype: torch.dtype) -> tuple[Projection, Projection]:
    kw = {"device": device, "dtype": dtype}
    if isinstance(layer, nn.Linear):
        if store_as_conv:
            return LinearAsConv1x1(layer.in_features, rank, **kw), LinearAsConv1x1(rank, layer.out_features, **kw)
        linear_down = nn.Linear(layer.in_features, rank, bias=False, **kw)
        return linear_down, nn.Linear(rank, layer.out_features, bias=False, **kw)
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1:
            raise ValueError(f"LoRA: grouped convolutions are not supported ({layer})")
        # Conv2d keeps its 2-tuples typed as tuple[int, ...]; they are the pairs it was built from.
        down = nn.Conv2d(layer.in_channels, rank, cast("tuple[int, int]", layer.kernel_size),
                         cast("tuple[int, int]", layer.stride), cast("str | tuple[int, int]", layer.padding),
                         cast("tuple[int, int]", layer.dilation), bias=False, **kw)
        return down, nn.Conv2d(rank, layer.out_channels, 1, bias=False, **kw)
    raise TypeError(f"LoRA: can only wrap nn.Linear or nn.Conv2d, got {type(layer).__name__}")
