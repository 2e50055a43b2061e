"""Block-wise ranks, alphas and learning-rate weights, with sd-scripts' numbering of U-Net blocks.

sd-scripts' ``networks.lora`` takes, inside ``network_args``, a rank and alpha per U-Net block
(``block_dims``, ``block_alphas``; ``conv_block_dims``, ``conv_block_alphas`` for the kxk
convolutions of LoCon) and a learning-rate weight per block (``down_lr_weight``, ``mid_lr_weight``,
``up_lr_weight``; weights not above ``block_lr_zero_threshold`` become 0). This module holds the
numbering, the parsing of those texts and the resulting ``BlockPlan``; it imports no torch.

Numbering, read off the kohya module name (text encoders are never block-wise):

* SD1/SD2, 25 blocks ``IN00``-``IN11``, ``MID``, ``OUT00``-``OUT11`` (the LDM input/output blocks).
  ``down_blocks_i`` ``resnets_j``/``attentions_j`` is block 1 + 3i + j and its ``downsamplers`` block
  1 + 3i + 2; ``up_blocks_i`` counts the same way from 13; ``mid_block`` is 12. IN00 is ``conv_in``,
  which never has a LoRA. The lr weights give 12 down (blocks 0-11), 1 mid and 12 up values.
* SDXL, 23 blocks: 0 for the time/label embeddings, ``input_blocks_n`` = 1 + n (n = 0..8),
  ``middle_block_n`` = 10 + n, ``output_blocks_n`` = 13 + n, 22 for the output layers. The lr
  weights give 9 down (blocks 1-9), 3 mid and 9 up values; blocks 0 and 22 keep weight 1.

As in sd-scripts, any block option turns block-wise ranks on only with ``block_dims`` or an lr
weight; a block whose rank is 0, or whose lr weight is 0, gets no LoRA module; short lr-weight lists
are filled with 1 and long ones cut (each with a note); rank and alpha lists must have one value per
block. The lr-weight presets ("cosine", "sine", "linear", "reverse_linear", "zeros", each optionally
``+base``) spread a quarter sine wave or a straight line over the down or up blocks.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Callable, TypeVar

LR_WEIGHT_PRESETS = ("cosine", "sine", "linear", "reverse_linear", "zeros")
_SD_NAME = re.compile(r"^lora_unet_(down|up)_blocks_(\d+)_(resnets|attentions|downsamplers|upsamplers)_(\d+)_")
_SDXL_NAME = re.compile(r"^lora_unet_(input_blocks|middle_block|output_blocks)_(\d+)_")
_SDXL_FIRST = {"input_blocks": 1, "middle_block": 10, "output_blocks": 13}
_Number = TypeVar("_Number", int, float)


class BlockError(ValueError):
    """A block option cannot be used as given (wrong count, not a number, unknown preset)."""


@dataclass(frozen=True)
class BlockLayout:
    """One family's blocks: their labels, and which blocks the down/mid/up lr weights cover."""

    models: str                    # "SD1/SD2" or "SDXL", for messages
    labels: tuple[str, ...]
    down: range
    mid: range
    up: range

    @property
    def count(self) -> int:
        return len(self.labels)


def _numbered(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(count)]


SD_LAYOUT = BlockLayout("SD1/SD2", tuple(_numbered("IN", 12) + ["MID"] + _numbered("OUT", 12)),
                        down=range(0, 12), mid=range(12, 13), up=range(13, 25))
SDXL_LAYOUT = BlockLayout("SDXL", tuple(["BASE"] + _numbered("IN", 9) + _numbered("MID", 3) + _numbered("OUT", 9)
                                        + ["OUT"]),
                          down=range(1, 10), mid=range(10, 13), up=range(13, 22))


def block_layout(family: str) -> BlockLayout:
    """The layout of ``sd1``, ``sd2`` or ``sdxl``."""
    if family in ("sd1", "sd2"):
        return SD_LAYOUT
    if family == "sdxl":
        return SDXL_LAYOUT
    raise BlockError(f"unknown model family {family!r}; expected sd1, sd2 or sdxl")


def block_index(lora_name: str, family: str) -> int | None:
    """sd-scripts' block number of a U-Net LoRA module; None for a text-encoder module."""
    layout = block_layout(family)
    if not lora_name.startswith("lora_unet_"):
        return None
    index = _sdxl_index(lora_name) if layout is SDXL_LAYOUT else _sd_index(lora_name)
    if index is None or not 0 <= index < layout.count:
        raise BlockError(f"{lora_name} lies in none of the {layout.count} {layout.models} U-Net blocks")
    return index


def _sd_index(lora_name: str) -> int | None:
    if lora_name.startswith("lora_unet_mid_block_"):
        return 12
    match = _SD_NAME.match(lora_name)
    if match is None:
        return None
    side, level, kind, number = match.groups()
    slot = 2 if kind.endswith("samplers") else int(number)
    return (1 if side == "down" else 13) + 3 * int(level) + slot


def _sdxl_index(lora_name: str) -> int | None:
    if lora_name.startswith(("lora_unet_time_embed_", "lora_unet_label_emb_")):
        return 0
    if lora_name.startswith("lora_unet_out_"):
        return 22
    match = _SDXL_NAME.match(lora_name)
    return None if match is None else _SDXL_FIRST[match.group(1)] + int(match.group(2))


# ---------------------------------------------------------------------------------------- the texts


def parse_numbers(option: str, text: str, kind: Callable[[str], _Number]) -> list[_Number]:
    """``"4,4,8"`` -> ``[4, 4, 8]`` (``kind`` is int or float); BlockError naming the option otherwise."""
    values = []
    what = "an integer" if kind is int else "a number"
    for item in str(text).split(","):
        try:
            values.append(kind(item.strip()))
        except ValueError:
            raise BlockError(f"{option}: {item.strip()!r} in {text!r} is not {what}") from None
    if any(v < 0 for v in values):
        raise BlockError(f"{option}: values must not be negative, got {text!r}")
    return values


def _one_per_block(option: str, values: list, layout: BlockLayout) -> list:
    if len(values) != layout.count:
        raise BlockError(f"{option} has {len(values)} values; a {layout.models} U-Net has {layout.count} blocks "
                         f"({layout.labels[0]}-{layout.labels[-1]}), so it needs exactly {layout.count}")
    return values


def preset_weights(text: str, length: int) -> list[float]:
    """The weights of an lr-weight preset (``"sine"``, ``"cosine+0.5"``, ...) over ``length`` blocks.

    ``sine`` rises as sin(pi/2 * i/(n-1)) from 0 to 1, ``cosine`` falls as cos(pi/2 * i/(n-1)) from 1
    to 0, ``linear`` rises as i/(n-1), ``reverse_linear`` falls, ``zeros`` is 0; ``+base`` adds base.
    """
    name, _, base_text = text.strip().partition("+")
    name = name.strip()
    try:
        base = float(base_text) if base_text.strip() else 0.0
    except ValueError:
        raise BlockError(f"lr weight preset {text!r}: {base_text.strip()!r} after '+' is not a number") from None
    steps = [i / (length - 1) for i in range(length)] if length > 1 else [0.0]
    shapes: dict[str, list[float]] = {
        "sine": [math.sin(math.pi / 2 * s) for s in steps],
        "cosine": [math.cos(math.pi / 2 * s) for s in steps],
        "linear": steps,
        "reverse_linear": steps[::-1],
        "zeros": [0.0] * length,
    }
    if name not in shapes:
        raise BlockError(f"lr weight {text!r} is neither a comma-separated list of numbers nor a preset "
                         f"({', '.join(LR_WEIGHT_PRESETS)}, optionally +base)")
    return [w + base for w in shapes[name]]


def _part_weights(option: str, text: str, length: int, notes: list[str]) -> list[float]:
    """One lr-weight option's values, filled with 1 or cut to ``length`` as sd-scripts does."""
    if "," in text or option == "mid_lr_weight":
        values = [float(v) if v.strip() else 0.0 for v in _checked_items(option, text)]
    elif _is_number(text):
        raise BlockError(f"{option}={text}: one number without a comma is no list (sd-scripts ignores it); give "
                         f"{length} comma-separated weights or a preset ({', '.join(LR_WEIGHT_PRESETS)})")
    else:
        values = preset_weights(text, length)
    if len(values) < length:
        notes.append(f"{option} has {len(values)} values for {length} blocks; the rest get weight 1")
        values += [1.0] * (length - len(values))
    elif len(values) > length:
        notes.append(f"{option} has {len(values)} values for {length} blocks; all after the first {length} "
                     "are ignored")
        values = values[:length]
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _checked_items(option: str, text: str) -> list[str]:
    items = text.split(",")
    for item in items:
        if item.strip() and not _is_number(item):
            raise BlockError(f"{option}: {item.strip()!r} in {text!r} is not a number")
    return items


# ---------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class BlockOptions:
    """The block options as sd-scripts passes them (texts from ``network_args``); None = not given."""

    block_dims: str | None = None
    block_alphas: str | None = None
    conv_block_dims: str | None = None
    conv_block_alphas: str | None = None
    down_lr_weight: str | None = None
    mid_lr_weight: str | None = None
    up_lr_weight: str | None = None
    block_lr_zero_threshold: float | None = None

    @property
    def lr_weighted(self) -> bool:
        return any(t is not None for t in (self.down_lr_weight, self.mid_lr_weight, self.up_lr_weight))

    @property
    def any_set(self) -> bool:
        return any(getattr(self, name) is not None for name in BLOCK_OPTION_NAMES)


# The option names, which are sd-scripts' network_args keys and the registry's option names alike.
BLOCK_OPTION_NAMES = tuple(f.name for f in fields(BlockOptions))


@dataclass(frozen=True)
class BlockPlan:
    """Per-block ranks, alphas and lr weights of one U-Net; a None list means "not block-wise"."""

    family: str
    dims: tuple[int, ...] | None = None                 # Linear and 1x1 layers
    alphas: tuple[float | None, ...] | None = None
    conv_dims: tuple[int, ...] | None = None            # kxk convolutions; None: no LoCon
    conv_alphas: tuple[float | None, ...] | None = None
    lr_weights: tuple[float, ...] | None = None
    notes: tuple[str, ...] = ()

    @property
    def layout(self) -> BlockLayout:
        return block_layout(self.family)

    def label(self, index: int) -> str:
        return self.layout.labels[index]

    def rank_alpha(self, lora_name: str, locon: bool, spatial_kernel: bool) -> tuple[int, float | None] | None:
        """The block's (rank, alpha) for a U-Net layer, or None when it gets no module.

        ``locon``: the layer is in the LoCon set (ResBlocks, samplers), which needs conv ranks;
        ``spatial_kernel``: a kxk convolution, which takes the conv rank, every other layer the block rank.
        """
        assert self.dims is not None and self.alphas is not None, "block ranks are off in this plan"
        index = block_index(lora_name, self.family)
        assert index is not None, f"{lora_name} is not a U-Net module"
        if (locon or spatial_kernel) and (self.conv_dims is None or self.conv_alphas is None):
            return None
        if spatial_kernel:
            assert self.conv_dims is not None and self.conv_alphas is not None
            rank, alpha = self.conv_dims[index], self.conv_alphas[index]
        else:
            rank, alpha = self.dims[index], self.alphas[index]
        return None if rank == 0 else (rank, alpha)


def block_plan(options: BlockOptions, family: str, network_dim: int, network_alpha: float | None,
               conv_dim: int | None = None, conv_alpha: float | None = None) -> BlockPlan | None:
    """Resolve the block options for ``family`` as sd-scripts' ``create_network`` does; None if none is set."""
    if not options.any_set:
        return None
    layout = block_layout(family)
    notes: list[str] = []
    weights = _lr_weights(options, layout, notes)
    if options.block_dims is None and weights is None:
        lone = [name for name in BLOCK_OPTION_NAMES if getattr(options, name) is not None]
        notes.append(f"{', '.join(lone)} ignored: block options act only with block_dims or an lr weight "
                     "(as in sd-scripts)")
        return BlockPlan(family, notes=tuple(notes))
    count = layout.count
    dims = _listed(options, "block_dims", int, layout) or [network_dim] * count
    alphas: list[float | None] = _listed(options, "block_alphas", float, layout) or [network_alpha] * count
    conv_dims = _listed(options, "conv_block_dims", int, layout)
    conv_alphas: list[float | None] | None = None
    default_conv_alpha = 1.0 if conv_alpha is None else conv_alpha
    if conv_dims is not None:
        conv_alphas = _listed(options, "conv_block_alphas", float, layout) or [default_conv_alpha] * count
    else:
        if options.conv_block_alphas is not None:
            notes.append("conv_block_alphas is ignored without conv_block_dims (as in sd-scripts)")
        if conv_dim is not None:
            conv_dims, conv_alphas = [conv_dim] * count, [default_conv_alpha] * count
    if weights is not None:  # a block that is not trained gets no module at all
        dims = [0 if w == 0 else d for d, w in zip(dims, weights)]
        if conv_dims is not None:
            conv_dims = [0 if w == 0 else d for d, w in zip(conv_dims, weights)]
    return BlockPlan(family, tuple(dims), tuple(alphas), None if conv_dims is None else tuple(conv_dims),
                     None if conv_alphas is None else tuple(conv_alphas),
                     None if weights is None else tuple(weights), tuple(notes))


def _listed(options: BlockOptions, option: str, kind: Callable[[str], _Number],
            layout: BlockLayout) -> list | None:
    text = getattr(options, option)
    return None if text is None else _one_per_block(option, parse_numbers(option, text, kind), layout)


def _lr_weights(options: BlockOptions, layout: BlockLayout, notes: list[str]) -> list[float] | None:
    """One weight per block from the down/mid/up options; None when none is given."""
    if not options.lr_weighted:
        return None
    threshold = options.block_lr_zero_threshold or 0.0
    weights = [1.0] * layout.count
    for option, blocks in (("down_lr_weight", layout.down), ("mid_lr_weight", layout.mid),
                           ("up_lr_weight", layout.up)):
        text = getattr(options, option)
        if text is None:
            continue
        for index, value in zip(blocks, _part_weights(option, str(text), len(blocks), notes)):
            weights[index] = value if value > threshold else 0.0
    return weights
