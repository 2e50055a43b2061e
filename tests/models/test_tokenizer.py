"""ClipTokenizer: same ids as transformers' CLIPTokenizer, and kohya's 75-token window layout."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from lib_train_tools.models.tokenizer import (
    BOS_TOKEN_ID,
    CLIP_L_PAD_TOKEN_ID,
    EOS_TOKEN_ID,
    OPEN_CLIP_PAD_TOKEN_ID,
    ClipTokenizer,
)

PROMPTS = [
    "1girl, blonde hair, full body, on chair",
    "a photo of an astronaut riding a horse on mars",
    "masterpiece, best quality, (red eyes:1.2), (red:1.2), [blurry], looking at viewer",
    "Café au lait; 42 cats & dogs -- don't stop, it's 3.14159 o'clock",
    "日本語のテキスト、猫と犬",
    "emoji \U0001F600 mixed with ÄÖÜ ß and  extra   spaces ",
    "wow! so cute!!",
    "sks_dog, solo_focus, highres, 8k uhd, <lora:foo:0.8>",
]
# Common words that are single CLIP tokens; a cycle of 8 so window offsets of 75 are visible.
WORDS = ["a", "cat", "dog", "red", "blue", "green", "tree", "house"]


def _hf_tokenizer_class():
    hide = "torchvision" not in sys.modules
    if hide:
        sys.modules["torchvision"] = None  # a broken torchvision must not be imported by transformers
    try:
        from transformers import CLIPTokenizer
    except ImportError:
        return None
    finally:
        if hide:
            sys.modules.pop("torchvision", None)
    return CLIPTokenizer


def _byte_symbols() -> list[str]:
    """CLIP's byte -> printable-character table: printable Latin-1 bytes map to themselves, the rest
    to code points from 256 upwards, listed with the printable ones first."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def _write_hf_vocab(folder: Path) -> tuple[Path, Path]:
    package = importlib.util.find_spec("open_clip")
    bpe_file = Path(list(package.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe_file).read().decode("utf-8").split("\n")
    merges = [line.split() for line in lines[1 : 1 + 48894]]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return vocab_file, merges_file


@pytest.fixture(scope="module")
def hf_tokenizers(tmp_path_factory):
    tokenizer_class = _hf_tokenizer_class()
    if tokenizer_class is None:
        pytest.skip("transformers is not installed")
    vocab_file, merges_file = _write_hf_vocab(tmp_path_factory.mktemp("clip_vocab"))
    return {
        pad: tokenizer_class(str(vocab_file), str(merges_file), pad_token=pad)
        for pad in ("<|endoftext|>", "!")
    }


@pytest.fixture(scope="module")
def clip_l() -> ClipTokenizer:
    return ClipTokenizer(CLIP_L_PAD_TOKEN_ID)


@pytest.fixture(scope="module")
def open_clip_tok() -> ClipTokenizer:
    return ClipTokenizer(OPEN_CLIP_PAD_TOKEN_ID)


def test_known_prompt(clip_l):
    ids = clip_l(["1girl, blonde hair, full body, on chair"])
    expected = [49406, 272, 1611, 267, 10711, 2225, 267, 1476, 1774, 267, 525, 4269, 49407]
    assert ids.shape == (1, 1, 77) and ids.dtype == torch.long
    assert ids[0, 0, :13].tolist() == expected
    assert ids[0, 0, 13:].tolist() == [EOS_TOKEN_ID] * 64


def test_ids_match_transformers(clip_l, open_clip_tok, hf_tokenizers):
    eos_padded = hf_tokenizers["<|endoftext|>"]
    ours = clip_l(PROMPTS)
    for index, prompt in enumerate(PROMPTS):
        reference = eos_padded(prompt, padding="max_length", truncation=True, max_length=77).input_ids
        assert [BOS_TOKEN_ID, *clip_l.encode(prompt), EOS_TOKEN_ID] == eos_padded(prompt).input_ids, prompt
        assert ours[index, 0].tolist() == reference, prompt


def test_zero_padding_matches_transformers_without_exclamation_marks(open_clip_tok, hf_tokenizers):
    # transformers splits every "!" out as the "!" pad token, while CLIP's BPE merges it; skip those.
    zero_padded = hf_tokenizers["!"]
    prompts = [p for p in PROMPTS if "!" not in p]
    ours = open_clip_tok(prompts)
    for index, prompt in enumerate(prompts):
        reference = zero_padded(prompt, padding="max_length", truncation=True, max_length=77).input_ids
        assert ours[index, 0].tolist() == reference, prompt


def _long_prompt(count: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(count))


@pytest.mark.parametrize("pad", [CLIP_L_PAD_TOKEN_ID, OPEN_CLIP_PAD_TOKEN_ID])
def test_160_tokens_make_three_windows(pad):
    tokenizer = ClipTokenizer(pad)
    tokens = tokenizer.encode(_long_prompt(160))
    assert len(tokens) == 160
    ids = tokenizer([_long_prompt(160)], max_length_windows=3)
    assert ids.shape == (1, 3, 77)
    windows = ids[0].tolist()
    assert windows[0] == [BOS_TOKEN_ID, *tokens[:75], EOS_TOKEN_ID]
    assert windows[1] == [BOS_TOKEN_ID, *tokens[75:150], EOS_TOKEN_ID]
    assert windows[2][:12] == [BOS_TOKEN_ID, *tokens[150:160], EOS_TOKEN_ID]
    assert windows[2][12:] == [pad] * 65


@pytest.mark.parametrize("pad, tail", [(CLIP_L_PAD_TOKEN_ID, EOS_TOKEN_ID), (OPEN_CLIP_PAD_TOKEN_ID, 0)])
def test_windows_without_text_get_bos_eos_then_pad(pad, tail):
    ids = ClipTokenizer(pad)(["red cat"], max_length_windows=3)[0].tolist()
    assert ids[0][:4] == [BOS_TOKEN_ID, 736, 2368, EOS_TOKEN_ID]
    assert ids[1] == ids[2] == [BOS_TOKEN_ID, EOS_TOKEN_ID] + [tail] * 75


def test_window_ending_exactly_at_75_tokens_is_closed_with_eos(open_clip_tok):
    # the 152-long sequence ends in pad here, so window 0's last id is only EOS because of the repair
    tokens = open_clip_tok.encode(_long_prompt(75))
    ids = open_clip_tok([_long_prompt(75)], max_length_windows=2)[0].tolist()
    assert ids[0] == [BOS_TOKEN_ID, *tokens, EOS_TOKEN_ID]
    assert ids[1] == [BOS_TOKEN_ID, EOS_TOKEN_ID] + [0] * 75


def test_long_prompt_is_truncated_and_keeps_eos(clip_l, open_clip_tok):
    tokens = clip_l.encode(_long_prompt(200))
    for tokenizer in (clip_l, open_clip_tok):
        ids = tokenizer([_long_prompt(200)])[0, 0].tolist()
        assert ids == [BOS_TOKEN_ID, *tokens[:75], EOS_TOKEN_ID]


def test_bad_arguments_raise(clip_l):
    with pytest.raises(TypeError, match="list of prompt strings"):
        clip_l("a single string")
    with pytest.raises(ValueError, match="max_length_windows must be at least 1, got 0"):
        clip_l(["x"], max_length_windows=0)
    with pytest.raises(ValueError, match="pad_token_id 49408 is outside"):
        ClipTokenizer(49408)
    assert clip_l([]).shape == (0, 1, 77)


def test_open_clip_package_is_not_imported(clip_l):
    assert clip_l.encode("cat") == [2368]
    assert "open_clip" not in sys.modules
