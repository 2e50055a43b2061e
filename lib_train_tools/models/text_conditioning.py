"""Turning token windows into U-Net conditioning, one function per model family.

Input ids are ``[batch, windows, 77]`` from ``tokenizer.ClipTokenizer``. Every window is encoded
on its own (as a batch of ``batch * windows``), then the states are stitched back into one sequence
the way kohya does: the BOS state of the first window, states 1..75 of every window, and the last
state of the last window, giving ``75 * windows + 2`` positions (77, 152, 227).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .clip import CLIPTextModel
from .tokenizer import WINDOW_LENGTH


def _check_ids(ids: torch.Tensor, name: str) -> tuple[int, int]:
    if ids.dim() != 3 or ids.shape[-1] != WINDOW_LENGTH:
        raise ValueError(f"{name}: expected token ids [batch, windows, {WINDOW_LENGTH}], got {tuple(ids.shape)}")
    return ids.shape[0], ids.shape[1]


def stitch_windows(states: torch.Tensor) -> torch.Tensor:
    """``[batch, windows, 77, width]`` -> ``[batch, 75 * windows + 2, width]`` (kohya's stitching)."""
    batch, windows, length, width = states.shape
    inner = states[:, :, 1 : length - 1].reshape(batch, windows * (length - 2), width)
    return torch.cat([states[:, 0, :1], inner, states[:, -1, length - 1 :]], dim=1)


def encode_sd(te: CLIPTextModel, ids: torch.Tensor, clip_skip: int = 1) -> torch.Tensor:
    """SD1/SD2 context: ``final_layer_norm(hidden_states[-clip_skip])``, stitched.

    ``clip_skip`` 1 is the last layer (``last_hidden_state``), 2 the penultimate, and so on.
    """
    batch, windows = _check_ids(ids, "encode_sd")
    if not 1 <= clip_skip <= te.config.num_layers:
        raise ValueError(f"encode_sd: clip_skip {clip_skip} must be between 1 and {te.config.num_layers}")
    out = te(ids.reshape(batch * windows, WINDOW_LENGTH))
    if clip_skip == 1:
        hidden = out.last_hidden_state
    else:
        hidden = te.text_model.final_layer_norm(out.hidden_states[-clip_skip])
    return stitch_windows(hidden.reshape(batch, windows, WINDOW_LENGTH, -1))


def encode_sdxl(
    te1: CLIPTextModel, te2: CLIPTextModel, ids1: torch.Tensor, ids2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL context and pooled vector.

    Context = TE1 after all but its last layer ⊕ TE2 after all but its last layer (no final norm on
    either), stitched and concatenated on the feature axis. Pooled = TE2's projected EOS state of
    the first window only.
    """
    batch, windows = _check_ids(ids1, "encode_sdxl ids1")
    if _check_ids(ids2, "encode_sdxl ids2") != (batch, windows):
        raise ValueError(
            f"encode_sdxl: ids1 {tuple(ids1.shape)} and ids2 {tuple(ids2.shape)} must have the same batch and windows"
        )
    if te2.text_projection is None:
        raise ValueError("encode_sdxl: te2 has no text_projection; SDXL's second encoder needs projection_dim > 0")
    out1 = te1(ids1.reshape(batch * windows, WINDOW_LENGTH))
    out2 = te2(ids2.reshape(batch * windows, WINDOW_LENGTH))
    hidden1 = out1.hidden_states[te1.config.num_layers - 1].reshape(batch, windows, WINDOW_LENGTH, -1)
    hidden2 = out2.hidden_states[-2].reshape(batch, windows, WINDOW_LENGTH, -1)
    context = torch.cat([stitch_windows(hidden1), stitch_windows(hidden2)], dim=-1)
    pooled = out2.pooled.reshape(batch, windows, -1)[:, 0]
    return context, pooled


def _as_pairs(value: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor, name: str) -> torch.Tensor:
    pairs = torch.as_tensor(value, dtype=torch.long)
    if pairs.dim() == 1:
        pairs = pairs.unsqueeze(0)
    if pairs.dim() != 2 or pairs.shape[1] != 2:
        raise ValueError(f"sdxl_time_ids: {name} must be a pair or a list of pairs, got shape {tuple(pairs.shape)}")
    return pairs


def sdxl_time_ids(
    original_size_hw: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor,
    crop_top_left: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor,
    target_size_hw: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor,
) -> torch.Tensor:
    """SDXL size conditioning ids ``[batch, 6]`` (long): orig h, w, crop top, left, target h, w.

    Each argument is one pair or ``batch`` pairs; a single pair is repeated across the batch.
    """
    parts = [
        _as_pairs(original_size_hw, "original_size_hw"),
        _as_pairs(crop_top_left, "crop_top_left"),
        _as_pairs(target_size_hw, "target_size_hw"),
    ]
    sizes = {part.shape[0] for part in parts} - {1}
    if len(sizes) > 1:
        raise ValueError(f"sdxl_time_ids: the three arguments have different batch sizes {sorted(sizes)}")
    batch = sizes.pop() if sizes else 1
    return torch.cat([part.expand(batch, 2) for part in parts], dim=1)
