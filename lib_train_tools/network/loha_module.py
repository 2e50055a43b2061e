"""LoHa: a weight change that is the Hadamard product of two low-rank products (Hyeon-Woo et al. 2022,
"FedPara: Low-Rank Hadamard Product for Communication-Efficient Federated Learning", eq. 2).

    dW = (hada_w1_a @ hada_w1_b) * (hada_w2_a @ hada_w2_b) * alpha / rank

with ``hada_w?_a`` of shape ``[out, rank]`` and ``hada_w?_b`` of shape ``[rank, in]``; for a Conv2d the
b factors are ``[rank, in * k * k]`` and dW is reshaped to the kernel ``[out, in, k, k]`` (LyCORIS'
plain, non-Tucker conv form). ``rank`` is ``hada_w1_b.shape[0]``, which is the ``dim`` that
AUTOMATIC1111's ``network_hada.py`` and Forge divide alpha by, so the file means the same there.
Initialisation follows LyCORIS: w1 factors and w2_b random, w2_a zero, so a new module adds nothing.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .lora_file import LoRAFileError
from .weight_adapter import WeightAdapter

HADA_PARTS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")


class LoHaModule(WeightAdapter):
    """A LoHa branch for one ``nn.Linear`` or ``nn.Conv2d``."""

    hada_w1_a: nn.Parameter
    hada_w1_b: nn.Parameter
    hada_w2_a: nn.Parameter
    hada_w2_b: nn.Parameter

    def __init__(self, name: str, layer: nn.Module, rank: int, alpha: float | None = None,
                 multiplier: float = 1.0, rank_dropout: float = 0.0, module_dropout: float = 0.0,
                 weight_decompose: bool = False, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(name, layer, rank, alpha, multiplier, rank_dropout, module_dropout, weight_decompose)
        out_dim, fan_in = self.layer.weight.shape[0], math.prod(self.layer.weight.shape[1:])
        device = self.layer.weight.device
        self.hada_w1_a = nn.Parameter(torch.empty(out_dim, rank, device=device, dtype=dtype))
        self.hada_w1_b = nn.Parameter(torch.empty(rank, fan_in, device=device, dtype=dtype))
        self.hada_w2_a = nn.Parameter(torch.empty(out_dim, rank, device=device, dtype=dtype))
        self.hada_w2_b = nn.Parameter(torch.empty(rank, fan_in, device=device, dtype=dtype))
        with torch.no_grad():
            nn.init.normal_(self.hada_w1_a, std=0.1)
            nn.init.normal_(self.hada_w1_b, std=1.0)
            nn.init.zeros_(self.hada_w2_a)
            nn.init.normal_(self.hada_w2_b, std=1.0)

    @property
    def is_conv(self) -> bool:
        return isinstance(self.layer, nn.Conv2d)

    def scaled_delta(self) -> Tensor:
        w1 = self.hada_w1_a @ self.hada_w1_b
        w2 = self.hada_w2_a @ self.hada_w2_b
        return (w1 * w2 * (self.alpha / self.rank).to(w1.dtype)).reshape(self.layer.weight.shape)

    @torch.no_grad()
    def load_file_weights(self, tensors: Mapping[str, Tensor], alpha: float | None, label: str) -> None:
        for part in HADA_PARTS:
            param: nn.Parameter = getattr(self, part)
            value = tensors.get(part)
            if value is None:
                raise LoRAFileError(f"{label}: {self.lora_name} has no {part}")
            if value.numel() != param.numel() or value.shape[0] != param.shape[0]:
                raise LoRAFileError(f"{label}: {self.lora_name}.{part} has shape {list(value.shape)}, the network "
                                    f"expects {list(param.shape)} (a different rank? continue with "
                                    "create_network_from_weights to take ranks from the file)")
            param.copy_(value.reshape(param.shape))
        self.alpha.fill_(self.rank if alpha is None else alpha)
        self.load_dora_scale(tensors, label)
