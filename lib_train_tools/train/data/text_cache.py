"""In-memory cache of text-encoder outputs, keyed by the exact caption text.

Used when the text encoders are frozen: every caption a run can produce is encoded once up
front (then the encoders may leave the GPU) and batches are assembled from the stored rows.
The encoder is a callable supplied by the trainer, ``encode(captions) -> {name: tensor}`` with
the batch on the first axis (e.g. ``{"hidden": (B, 77, 768)}`` or SDXL's hidden states plus
pooled vector); this module never sees a model.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional, Sequence

import torch

EncodeText = Callable[[Sequence[str]], Mapping[str, torch.Tensor]]
Progress = Callable[[int, int], None]


class TextEncoderCache:
    """Encoded captions: one row per distinct caption text."""

    def __init__(self, encode: EncodeText, batch_size: int = 8) -> None:
        if batch_size < 1:
            raise ValueError(f"text-encoder batch size {batch_size} must be at least 1")
        self._encode = encode
        self._batch_size = batch_size
        self._rows: dict[str, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, caption: object) -> bool:
        return caption in self._rows

    def fill(self, captions: Iterable[str], progress: Optional[Progress] = None) -> int:
        """Encode every caption not cached yet, in batches; returns how many were encoded."""
        missing = [text for text in dict.fromkeys(captions) if text not in self._rows]
        for start in range(0, len(missing), self._batch_size):
            self._encode_rows(missing[start : start + self._batch_size])
            if progress is not None:
                progress(min(start + self._batch_size, len(missing)), len(missing))
        return len(missing)

    def get_batch(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Stacked outputs for ``captions`` in order; a caption not seen before is encoded now."""
        if not captions:
            raise ValueError("get_batch needs at least one caption")
        self.fill(captions)
        names = self._rows[captions[0]].keys()
        return {name: torch.stack([self._rows[text][name] for text in captions]) for name in names}

    def _encode_rows(self, texts: list[str]) -> None:
        with torch.no_grad():
            outputs = self._encode(texts)
        for name, tensor in outputs.items():
            if tensor.shape[0] != len(texts):
                raise RuntimeError(f"text encoder output '{name}' has {tensor.shape[0]} rows for {len(texts)} captions")
        for index, text in enumerate(texts):
            self._rows[text] = {name: tensor[index].detach().cpu().clone() for name, tensor in outputs.items()}
