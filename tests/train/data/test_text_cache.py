"""Tests for lib_train_tools/train/data/text_cache.py: encode each caption once, stack in order."""

from __future__ import annotations

import pytest
import torch

from lib_train_tools.train.data.text_cache import TextEncoderCache


class FakeEncoder:
    """Encodes a caption as [len(text), first char code]; records every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, captions):
        self.calls.append(list(captions))
        hidden = torch.tensor([[float(len(t)), float(ord(t[0]) if t else 0)] for t in captions])
        return {"hidden": hidden[:, None, :].repeat(1, 3, 1), "pooled": hidden.sum(-1)}


def test_fill_encodes_distinct_captions_in_batches():
    encoder = FakeEncoder()
    cache = TextEncoderCache(encoder, batch_size=2)
    assert cache.fill(["a", "bb", "a", "", "ccc"]) == 4
    assert encoder.calls == [["a", "bb"], ["", "ccc"]]
    assert len(cache) == 4 and "bb" in cache
    assert cache.fill(["bb", ""]) == 0 and len(encoder.calls) == 2


def test_get_batch_stacks_rows_in_caption_order():
    encoder = FakeEncoder()
    cache = TextEncoderCache(encoder)
    cache.fill(["xyz", "a"])
    batch = cache.get_batch(["a", "xyz", "a"])
    assert batch["hidden"].shape == (3, 3, 2)
    assert batch["pooled"].tolist() == [1 + 97, 3 + 120, 1 + 97]


def test_unknown_caption_is_encoded_on_demand():
    encoder = FakeEncoder()
    cache = TextEncoderCache(encoder)
    cache.get_batch(["new one"])
    assert encoder.calls == [["new one"]]


def test_encoder_row_mismatch_is_an_error():
    cache = TextEncoderCache(lambda captions: {"hidden": torch.zeros(1, 4)})
    with pytest.raises(RuntimeError, match="'hidden' has 1 rows for 2 captions"):
        cache.fill(["a", "b"])
