"""Tests for lib_train_tools/train/data/captions.py: kohya's caption processing order and options."""

from __future__ import annotations

import random

import pytest

from lib_train_tools.train.data.captions import CaptionOptions, possible_captions, process_caption

TAGS = "sks, red hair, smile, outdoors, looking at viewer"


def run(caption: str, seed: int = 0, epoch: int = 0, **options) -> str:
    return process_caption(caption, CaptionOptions(**options), random.Random(seed), epoch)


def test_no_options_leave_caption_untouched():
    assert run("a  photo,of sks ,dog") == "a  photo,of sks ,dog"


def test_prefix_and_suffix_are_joined_with_spaces():
    assert run("red hair, smile", prefix="sks,", suffix=", masterpiece") == "sks, red hair, smile , masterpiece"


def test_shuffle_with_keep_tokens_exact_output():
    assert run(TAGS, seed=1234, shuffle=True, keep_tokens=1) == "sks, smile, outdoors, red hair, looking at viewer"


def test_shuffle_keeps_first_tokens_and_permutes_the_rest():
    outputs = {run(TAGS, seed=s, shuffle=True, keep_tokens=2) for s in range(20)}
    assert len(outputs) > 1
    for text in outputs:
        tags = text.split(", ")
        assert tags[:2] == ["sks", "red hair"]
        assert sorted(tags[2:]) == ["looking at viewer", "outdoors", "smile"]


def test_keep_tokens_separator_fixes_head_and_tail_exact_output():
    caption = "sks girl, solo ||| red hair, smile, outdoors ||| masterpiece, best quality"
    result = run(caption, seed=7, shuffle=True, keep_tokens_separator="|||")
    assert result == "sks girl, solo, outdoors, red hair, smile, masterpiece, best quality"


def test_keep_tokens_separator_is_removed_without_shuffle():
    assert run("sks ||| a,b", keep_tokens_separator="|||") == "sks, a, b"


def test_prefix_counts_towards_keep_tokens():
    for seed in range(10):
        assert run("b, c, d", seed=seed, prefix="trigger,", shuffle=True, keep_tokens=1).startswith("trigger, ")


def test_caption_dropout_rates_zero_and_one():
    assert run(TAGS, dropout_rate=0.0) == TAGS
    assert run(TAGS, dropout_rate=1.0, prefix="p") == ""


def test_caption_dropout_rate_half_drops_some_not_all():
    results = [run("x", seed=s, dropout_rate=0.5) for s in range(40)]
    assert 0 < results.count("") < 40


def test_dropout_every_n_epochs_counts_epochs_from_one():
    dropped = [run("x", epoch=e, dropout_every_n_epochs=2) == "" for e in range(6)]
    assert dropped == [False, True, False, True, False, True]


def test_tag_dropout_one_keeps_only_fixed_tags():
    assert run(TAGS, tag_dropout_rate=1.0, keep_tokens=1) == "sks"
    assert run("a ||| b, c ||| z", tag_dropout_rate=1.0, keep_tokens_separator="|||") == "a, z"


def test_tag_dropout_exact_output():
    assert run("a, b, c, d, e, f", seed=3, tag_dropout_rate=0.5) == "b, d, e"


def test_secondary_separator_moves_groups_together():
    outputs = {run("a;;;b, c, d", seed=s, shuffle=True, secondary_separator=";;;") for s in range(20)}
    assert len(outputs) > 1
    for text in outputs:
        assert "a,b" in text and ";;;" not in text


def test_custom_separator():
    assert run("x; y", separator=";", tag_dropout_rate=1.0, keep_tokens=1) == "x"


@pytest.mark.parametrize(
    "field, value", [("dropout_rate", 1.5), ("tag_dropout_rate", -0.1), ("keep_tokens", -1), ("separator", "")]
)
def test_invalid_options_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        CaptionOptions(**{field: value})


def test_possible_captions():
    assert possible_captions("a, b", CaptionOptions(prefix="p")) == ("p a, b",)
    assert possible_captions("a", CaptionOptions(dropout_rate=0.1)) == ("a", "")
    assert possible_captions("a", CaptionOptions(dropout_every_n_epochs=3)) == ("a", "")
    with pytest.raises(ValueError, match="vary per step"):
        possible_captions("a", CaptionOptions(shuffle=True))
