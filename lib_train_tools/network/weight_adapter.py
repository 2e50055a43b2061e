"""The common part of adapters that stand for a whole weight change dW (LoHa, LoKr): hooking the layer,
running ``y = layer(x) + op(x, multiplier * dW)``, DoRA, dropout, merging.

A subclass builds dW from its factors (``scaled_delta``) and loads its own file tensors; the layer
is hooked as ``LoRAModule``'s is (``layer_hook.LayerHook``), so the model's ``state_dict`` never
changes and the adapter's holds only the file's keys.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import torch_compat
from . import dora
from .layer_hook import LayerHook
from .lora_file import LoRAFileError


def layer_op(layer: nn.Module, x: Tensor, weight: Tensor) -> Tensor:
    """``layer``'s own operation with another weight and no bias (a Linear's matmul, a Conv2d's conv)."""
    if isinstance(layer, nn.Conv2d):
        # Conv2d keeps its 2-tuples typed as tuple[int, ...]; they are the pairs it was built from.
        return F.conv2d(x, weight.reshape(layer.weight.shape), None, cast("tuple[int, int]", layer.stride),
                        cast("str | tuple[int, int]", layer.padding), cast("tuple[int, int]", layer.dilation),
                        layer.groups)
    return F.linear(x, weight.reshape(cast(Tensor, layer.weight).shape))


def file_magnitude(stored: Tensor, weight: Tensor, what: str) -> Tensor:
    """A file's ``dora_scale`` reshaped for ``weight``; LoRAFileError when its layout is not the WebUIs'."""
    try:
        return dora.check_magnitude_shape(stored, weight, what)
    except ValueError as exc:
        raise LoRAFileError(str(exc)) from None


class WeightAdapter(LayerHook, nn.Module):  # type: ignore[misc]  # apply() shadows Module.apply on purpose
    """An adapter whose branch is ``op(x, dW)``: subclasses define ``scaled_delta`` (dW at multiplier 1)."""

    layer: nn.Linear | nn.Conv2d   # set through __dict__, so its weights stay out of our state_dict
    alpha: Tensor                  # a buffer
    dora_scale: nn.Parameter | None
    _base_forward: Callable[[Tensor], Tensor] | None

    def __init__(self, name: str, layer: nn.Module, rank: int, alpha: float | None, multiplier: float = 1.0,
                 rank_dropout: float = 0.0, module_dropout: float = 0.0, weight_decompose: bool = False) -> None:
        super().__init__()
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            raise TypeError(f"{name}: can only wrap nn.Linear or nn.Conv2d, got {type(layer).__name__}")
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            raise ValueError(f"{name}: grouped convolutions are not supported ({layer})")
        if rank < 1:
            raise ValueError(f"{name}: rank must be >= 1, got {rank}")
        self.lora_name = name
        self.rank = rank
        self.multiplier = multiplier
        self.rank_dropout = rank_dropout
        self.module_dropout = module_dropout
        self.__dict__["layer"] = layer
        device = layer.weight.device
        alpha = float(rank) if not alpha else float(alpha)   # 0/None: scale 1, as in kohya and LyCORIS
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32, device=device))
        self.dora_scale = dora.magnitude_parameter(layer.weight) if weight_decompose else None
        self._base_forward = None
        self._had_instance_forward = False

    # ------------------------------------------------------------------ subclass part

    def scaled_delta(self) -> Tensor:
        """dW including the alpha scale, in the layer weight's shape (with gradients)."""
        raise NotImplementedError

    def load_file_weights(self, tensors: Mapping[str, Tensor], alpha: float | None, label: str) -> None:
        """Take this module's tensors from a file (names without the module prefix)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ use

    def forward(self, x: Tensor) -> Tensor:
        if self._base_forward is None:
            raise RuntimeError(f"{self.lora_name}: adapter called before apply()")
        y = self._base_forward(x)
        if self.multiplier == 0:
            return y
        if self.training and self.module_dropout and torch.rand(()) < self.module_dropout:
            return y
        change = self._change(self.scaled_delta(), self.multiplier)
        if change.dtype != x.dtype and not torch_compat.is_autocast_enabled(x.device):
            change = change.to(x.dtype)
        return y + layer_op(self.layer, x, change).to(y.dtype)

    def _change(self, delta: Tensor, multiplier: float) -> Tensor:
        """The layer weight's change at ``multiplier``: plain ``multiplier * dW``, or DoRA's."""
        if self.training and self.rank_dropout:
            # LyCORIS' rank dropout for these kinds: drop whole output rows of dW for this step.
            keep = torch.rand(delta.shape[0], device=delta.device) > self.rank_dropout
            delta = delta * keep.to(delta.dtype).reshape(-1, *([1] * (delta.ndim - 1)))
        if self.dora_scale is not None:
            return dora.decomposed_delta(self.layer.weight, delta, self.dora_scale, multiplier)
        return delta * multiplier

    @torch.no_grad()
    def delta_weight(self) -> Tensor:
        """The change of the wrapped layer's weight this adapter stands for (float32, at its multiplier)."""
        was_training = self.training
        self.train(False)
        try:
            return self._change(self.scaled_delta().float(), self.multiplier).reshape(self.layer.weight.shape)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def merge(self) -> None:
        """Add ``delta_weight()`` into the wrapped layer's weight and stop adding the branch."""
        self.remove()
        weight = self.layer.weight
        weight.add_(self.delta_weight().to(device=weight.device, dtype=weight.dtype))

    def load_dora_scale(self, tensors: Mapping[str, Tensor], label: str) -> None:
        """Copy ``dora_scale`` from a file; a file and a module must agree on whether there is one."""
        stored = tensors.get("dora_scale")
        if (stored is None) != (self.dora_scale is None):
            has = "has" if stored is not None else "has no"
            raise LoRAFileError(f"{label}: {self.lora_name} {has} dora_scale, the network is "
                             f"{'DoRA' if self.dora_scale is not None else 'not DoRA'}")
        if stored is not None and self.dora_scale is not None:
            self.dora_scale.copy_(file_magnitude(stored, self.layer.weight, f"{label}: {self.lora_name}.dora_scale"))

    def extra_repr(self) -> str:
        alpha = "?" if self.alpha.is_meta else f"{float(self.alpha):g}"
        return (f"{self.lora_name}, rank={self.rank}, alpha={alpha}, multiplier={self.multiplier}"
                f"{', dora' if self.dora_scale is not None else ''}")
