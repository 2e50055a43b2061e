"""Optimizer parameter groups of a LoRA network: per part, per U-Net block, and LoRA+.

LoRA+ (Hayou, Ghosh, Yu 2024, "LoRA+: Efficient Low Rank Adaptation of Large Models",
arXiv:2402.12354): with ``delta W = B A`` and B initialised to zero, training B with a learning rate
``lambda`` times that of A (lambda around 16 in the paper) learns features faster at the same cost.
B is kohya's ``lora_up``; as in sd-scripts, every parameter whose name contains ``lora_up`` gets
``lr * ratio`` and everything else the part's rate. The ratio is the part's own
(``loraplus_unet_lr_ratio`` / ``loraplus_text_encoder_lr_ratio``), else ``loraplus_lr_ratio``; 0 or
unset means no LoRA+.

Block lr weights (see ``blocks.py``) split the U-Net into one group per block, with the U-Net rate
times the block's weight. A group whose rate is 0 is left out and its parameters stop requiring
gradients, so the optimizer never changes them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from .blocks import BlockPlan, block_index

UP_WEIGHT_MARK = "lora_up"


@dataclass(frozen=True)
class LoRAPlus:
    """sd-scripts' three LoRA+ options as given (None: not set)."""

    lr_ratio: float | None = None
    unet_lr_ratio: float | None = None
    text_encoder_lr_ratio: float | None = None

    @property
    def unet_ratio(self) -> float | None:
        return self.unet_lr_ratio or self.lr_ratio or None

    @property
    def text_encoder_ratio(self) -> float | None:
        return self.text_encoder_lr_ratio or self.lr_ratio or None


def is_up_weight(param_name: str) -> bool:
    """True for a LoRA's B matrix (``lora_up.weight``), the one LoRA+ trains faster."""
    return UP_WEIGHT_MARK in param_name


def build_param_groups(text_encoder_loras: Sequence[nn.Module], unet_loras: Sequence[nn.Module],
                       text_encoder_lr: float | None, unet_lr: float | None,
                       loraplus: LoRAPlus | None = None, blocks: BlockPlan | None = None) -> list[dict]:
    """Groups in sd-scripts' order: text encoder, then the U-Net (per block with lr weights).

    Each group is ``{"params", "lr", "name"}``; the names are ``text_encoder``, ``unet`` or
    ``unet_<block>`` (``unet_IN04``), with ``_plus`` for the LoRA+ ``lora_up`` group.
    """
    plus = loraplus or LoRAPlus()
    groups = _part_groups("text_encoder", text_encoder_loras, text_encoder_lr, plus.text_encoder_ratio)
    if blocks is None or blocks.lr_weights is None:
        return groups + _part_groups("unet", unet_loras, unet_lr, plus.unet_ratio)
    by_block: dict[int, list[nn.Module]] = {}
    for module in unet_loras:
        index = block_index(str(getattr(module, "lora_name")), blocks.family)
        assert index is not None, "every U-Net module lies in a block"
        by_block.setdefault(index, []).append(module)
    for index in sorted(by_block):
        rate = None if unet_lr is None else unet_lr * blocks.lr_weights[index]
        groups += _part_groups(f"unet_{blocks.label(index)}", by_block[index], rate, plus.unet_ratio)
    return groups


def _part_groups(name: str, loras: Sequence[nn.Module], lr: float | None, ratio: float | None) -> list[dict]:
    """The base group and, with a LoRA+ ratio, the ``lora_up`` group of some modules."""
    base: list[nn.Parameter] = []
    up: list[nn.Parameter] = []
    for module in loras:
        for param_name, param in module.named_parameters():
            (up if ratio and is_up_weight(param_name) else base).append(param)
    groups = []
    for group_name, params, rate in ((name, base, lr), (f"{name}_plus", up, None if lr is None else lr * (ratio or 0))):
        for param in params:
            param.requires_grad_(bool(rate))
        if params and rate:
            groups.append({"params": params, "lr": rate, "name": group_name})
    return groups
