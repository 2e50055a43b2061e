"""LoKr: a weight change that is a Kronecker product (Yeh et al. 2024, "Navigating Text-To-Image
Customization: From LyCORIS Fine-Tuning to Model Evaluation", section 3.2).

    dW = kron(w1, w2) * scale,   w1: [out_small, in_small],   w2: [out_big, in_big(, k, k)]

``out = out_small * out_big`` and ``in = in_small * in_big`` split the layer's sizes by
``factorization`` (``factor`` -1: as square as possible). ``w2`` is stored as ``lokr_w2_a @
lokr_w2_b`` (``[out_big, rank] @ [rank, in_big * k * k]``) unless the rank is at least half its
larger side or ``full_matrix`` is set; then it is stored whole as ``lokr_w2`` (``[out_big, in_big,
k, k]`` for a conv). ``w1`` is stored whole as ``lokr_w1`` unless ``decompose_both`` asks for
``lokr_w1_a @ lokr_w1_b`` and the rank is below half its larger side. These are LyCORIS' rules.

The scale is alpha / rank, except when both halves are stored whole: then there is no rank and the
scale is 1 (LyCORIS writes alpha = rank there). This is exactly what AUTOMATIC1111's
``network_lokr.py`` and Forge compute: their ``dim`` is the rank of a factorised half, and with
none the scale is 1.0. New modules add nothing: the w2 half starts at zero.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .lora_file import LoRAFileError
from .weight_adapter import WeightAdapter

LOKR_PARTS = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b")


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """Split ``dimension`` into ``(small, big)`` with ``small * big == dimension`` and ``small <= big``.

    A positive ``factor`` that divides ``dimension`` is one of the two parts. Otherwise ``small`` is
    the largest divisor that is at most sqrt(dimension) and, for a positive ``factor``, at most
    ``factor`` (so 128 -> (8, 16), 250 -> (10, 25), 127 -> (1, 127); with factor 8, 250 -> (5, 50)).
    """
    if dimension < 1:
        raise ValueError(f"cannot factorise {dimension}")
    if factor > 0 and dimension % factor == 0:
        return min(factor, dimension // factor), max(factor, dimension // factor)
    limit = math.isqrt(dimension) if factor <= 0 else min(factor, math.isqrt(dimension))
    small = max(d for d in range(1, limit + 1) if dimension % d == 0)
    return small, dimension // small


@dataclass(frozen=True)
class KronLayout:
    """How one LoKr module stores its two halves; a ``None`` rank means that half is stored whole."""

    out_small: int
    out_big: int
    in_small: int
    in_big: int
    kernel: tuple[int, ...]       # () for a Linear
    w1_rank: int | None = None
    w2_rank: int | None = None

    @property
    def rank(self) -> int | None:
        """The rank the loaders divide alpha by (w2's, else w1's); None when both halves are whole."""
        return self.w2_rank if self.w2_rank is not None else self.w1_rank

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """File part -> shape."""
        shapes: dict[str, tuple[int, ...]] = {}
        if self.w1_rank is None:
            shapes["lokr_w1"] = (self.out_small, self.in_small)
        else:
            shapes["lokr_w1_a"] = (self.out_small, self.w1_rank)
            shapes["lokr_w1_b"] = (self.w1_rank, self.in_small)
        if self.w2_rank is None:
            shapes["lokr_w2"] = (self.out_big, self.in_big, *self.kernel)
        else:
            shapes["lokr_w2_a"] = (self.out_big, self.w2_rank)
            shapes["lokr_w2_b"] = (self.w2_rank, self.in_big * math.prod(self.kernel))
        return shapes


def kron_layout(weight_shape: tuple[int, ...], rank: int, factor: int = -1, full_matrix: bool = False,
                decompose_both: bool = False) -> KronLayout:
    """LyCORIS' layout for a layer weight of ``weight_shape`` (``[out, in]`` or ``[out, in, k, k]``)."""
    out_small, out_big = factorization(weight_shape[0], factor)
    in_small, in_big = factorization(weight_shape[1], factor)
    w1_factored = decompose_both and not full_matrix and rank < max(out_small, in_small) / 2
    w2_factored = not full_matrix and rank < max(out_big, in_big) / 2
    return KronLayout(out_small, out_big, in_small, in_big, tuple(weight_shape[2:]),
                      rank if w1_factored else None, rank if w2_factored else None)


def layout_from_tensors(tensors: Mapping[str, Tensor], weight_shape: tuple[int, ...], what: str) -> KronLayout:
    """The layout a file's tensors have; LoRAFileError when they do not make ``weight_shape``."""
    w1, w1_a, w1_b = tensors.get("lokr_w1"), tensors.get("lokr_w1_a"), tensors.get("lokr_w1_b")
    w2, w2_a, w2_b = tensors.get("lokr_w2"), tensors.get("lokr_w2_a"), tensors.get("lokr_w2_b")
    if tensors.get("lokr_t2") is not None:
        raise LoRAFileError(f"{what}: the Tucker form of LoKr (lokr_t2) is not supported")
    kernel = tuple(weight_shape[2:])
    if w1 is not None:
        out_small, in_small, w1_rank = w1.shape[0], w1.shape[1], None
    elif w1_a is not None and w1_b is not None:
        out_small, in_small, w1_rank = w1_a.shape[0], w1_b.shape[1], int(w1_a.shape[1])
    else:
        raise LoRAFileError(f"{what}: a LoKr module needs lokr_w1 (or lokr_w1_a and lokr_w1_b)")
    if w2 is not None:
        out_big, fan_in, w2_rank = w2.shape[0], w2.shape[1:].numel(), None
    elif w2_a is not None and w2_b is not None:
        out_big, fan_in, w2_rank = w2_a.shape[0], w2_b.shape[1], int(w2_a.shape[1])
    else:
        raise LoRAFileError(f"{what}: a LoKr module needs lokr_w2 (or lokr_w2_a and lokr_w2_b)")
    in_big = fan_in // max(1, math.prod(kernel))
    layout = KronLayout(out_small, out_big, in_small, in_big, kernel, w1_rank, w2_rank)
    if (out_small * out_big, in_small * in_big) != tuple(weight_shape[:2]) or in_big * math.prod(kernel) != fan_in:
        raise LoRAFileError(f"{what}: kron of its halves does not make the layer's weight {list(weight_shape)}")
    return layout


class LoKrModule(WeightAdapter):
    """A LoKr branch for one ``nn.Linear`` or ``nn.Conv2d``."""

    def __init__(self, name: str, layer: nn.Module, rank: int, alpha: float | None = None,
                 multiplier: float = 1.0, rank_dropout: float = 0.0, module_dropout: float = 0.0,
                 weight_decompose: bool = False, factor: int = -1, full_matrix: bool = False,
                 decompose_both: bool = False, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(name, layer, rank, alpha, multiplier, rank_dropout, module_dropout, weight_decompose)
        self.dtype = dtype
        self.layout = kron_layout(tuple(self.layer.weight.shape), rank, factor, full_matrix, decompose_both)
        self._build(self.layout)
        if self.layout.rank is None:
            self.alpha.fill_(rank)   # both halves whole: scale 1, and LyCORIS writes alpha = rank

    def _build(self, layout: KronLayout) -> None:
        """(Re)create the parameters for ``layout``, initialised as LyCORIS does."""
        for part in LOKR_PARTS:
            if part in self._parameters:
                del self._parameters[part]
        device = self.layer.weight.device
        with torch.no_grad():
            for part, shape in layout.shapes().items():
                param = nn.Parameter(torch.empty(shape, device=device, dtype=self.dtype))
                if part in ("lokr_w2", "lokr_w2_b"):
                    nn.init.zeros_(param)
                else:
                    nn.init.kaiming_uniform_(param, a=math.sqrt(5))
                self.register_parameter(part, param)
        self.layout = layout

    @property
    def scale(self) -> Tensor:
        if self.layout.rank is None:
            return torch.ones((), device=self.alpha.device)
        return self.alpha / self.layout.rank

    def _half(self, name: str) -> Tensor:
        whole = self._parameters.get(name)
        if whole is not None:
            return whole
        return self._parameters[f"{name}_a"] @ self._parameters[f"{name}_b"]  # type: ignore[operator]

    def scaled_delta(self) -> Tensor:
        w1, w2 = self._half("lokr_w1"), self._half("lokr_w2")
        if w2.ndim == 4:
            w1 = w1[:, :, None, None]
        # A 2-D w2 of a conv ([out_big, in_big * k * k]) gives the same elements as the 4-D kron after the reshape.
        return (torch.kron(w1, w2) * self.scale.to(w2.dtype)).reshape(self.layer.weight.shape)

    @torch.no_grad()
    def load_file_weights(self, tensors: Mapping[str, Tensor], alpha: float | None, label: str) -> None:
        what = f"{label}: {self.lora_name}"
        layout = layout_from_tensors(tensors, tuple(self.layer.weight.shape), what)
        if layout != self.layout:   # the file decides the factor and which halves are whole
            self._build(layout)
        for part, shape in layout.shapes().items():
            value = tensors[part]
            if value.numel() != math.prod(shape):
                raise LoRAFileError(f"{what}.{part} has shape {list(value.shape)}, expected {list(shape)}")
            self._parameters[part].copy_(value.reshape(shape))  # type: ignore[union-attr]
        self.rank = layout.rank if layout.rank is not None else self.rank
        self.alpha.fill_(self.rank if alpha is None or layout.rank is None else alpha)
        self.load_dora_scale(tensors, label)
