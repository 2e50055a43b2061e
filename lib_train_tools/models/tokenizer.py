"""CLIP BPE tokenizer for all Stable Diffusion text encoders, and kohya-style 75-token windows.

The BPE itself is open_clip's ``SimpleTokenizer`` (vocabulary shipped inside the package, nothing
downloaded). We load ``open_clip/tokenizer.py`` as a standalone file instead of importing the
``open_clip`` package, because the package's ``__init__`` imports torchvision, which is broken on
some installs; that file has no relative imports.

All SD tokenizers share one vocabulary and differ only in padding: CLIP-L (SD1, SDXL TE1) pads with
EOS, the OpenCLIP encoders (SD2, SDXL TE2) pad with id 0.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from types import ModuleType
from typing import Any

import torch

VOCAB_SIZE = 49408
BOS_TOKEN_ID = 49406
EOS_TOKEN_ID = 49407
CLIP_L_PAD_TOKEN_ID = EOS_TOKEN_ID
OPEN_CLIP_PAD_TOKEN_ID = 0
# Pad id by checkpoint text-encoder layout: CLIP-L pads with EOS, the OpenCLIP encoders with 0 ("!").
PAD_TOKEN_BY_LAYOUT = {"hf": CLIP_L_PAD_TOKEN_ID, "open_clip": OPEN_CLIP_PAD_TOKEN_ID}
WINDOW_LENGTH = 77
WINDOW_TOKENS = WINDOW_LENGTH - 2
_INSTALL_HINT = "install it with `pip install open_clip_torch`"


class TokenizerUnavailableError(RuntimeError):
    """open_clip's tokenizer file cannot be found or loaded."""


@lru_cache(maxsize=1)
def _open_clip_tokenizer_module() -> ModuleType:
    """Load ``open_clip/tokenizer.py`` without running ``open_clip/__init__.py``."""
    try:
        package = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        package = None
    if package is None or not package.submodule_search_locations:
        raise TokenizerUnavailableError(f"the CLIP tokenizer needs the open_clip package; {_INSTALL_HINT}")
    path = os.path.join(list(package.submodule_search_locations)[0], "tokenizer.py")
    spec = importlib.util.spec_from_file_location("lib_train_tools_open_clip_tokenizer", path)
    if not os.path.isfile(path) or spec is None or spec.loader is None:
        raise TokenizerUnavailableError(f"open_clip is installed but {path} is missing; {_INSTALL_HINT} again")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        raise TokenizerUnavailableError(
            f"open_clip's tokenizer ({path}) could not be loaded: {error}; {_INSTALL_HINT} with its dependencies"
        ) from error
    return module


@lru_cache(maxsize=1)
def _bpe() -> Any:
    """The shared BPE encoder (building it parses ~49k merges, so it is built once)."""
    bpe = _open_clip_tokenizer_module().SimpleTokenizer()
    # open_clip 2.20 (the WebUIs' pin) has no sot_token_id/eot_token_id attributes; its encoder
    # table has the special tokens in every version.
    bos, eos = bpe.encoder.get("<start_of_text>"), bpe.encoder.get("<end_of_text>")
    if (bpe.vocab_size, bos, eos) != (VOCAB_SIZE, BOS_TOKEN_ID, EOS_TOKEN_ID):
        raise TokenizerUnavailableError(
            f"open_clip's tokenizer has vocab {bpe.vocab_size} with BOS/EOS {bos}/{eos}; "
            f"expected the CLIP vocabulary ({VOCAB_SIZE}, {BOS_TOKEN_ID}/{EOS_TOKEN_ID})"
        )
    return bpe


class ClipTokenizer:
    """Turns prompts into ``[batch, windows, 77]`` token ids for one text encoder.

    ``pad_token_id`` is ``CLIP_L_PAD_TOKEN_ID`` (49407) for CLIP-L and ``OPEN_CLIP_PAD_TOKEN_ID`` (0)
    for the OpenCLIP encoders.
    """

    bos_token_id = BOS_TOKEN_ID
    eos_token_id = EOS_TOKEN_ID

    def __init__(self, pad_token_id: int):
        if not 0 <= pad_token_id < VOCAB_SIZE:
            raise ValueError(
                f"ClipTokenizer: pad_token_id {pad_token_id} is outside the vocabulary 0..{VOCAB_SIZE - 1}"
            )
        self.pad_token_id = pad_token_id
        self._bpe = _bpe()

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` (lower-cased and cleaned as CLIP does), without BOS/EOS."""
        return list(self._bpe.encode(text))

    def __call__(self, texts: list[str], max_length_windows: int = 1) -> torch.Tensor:
        """Tokenise to ``75 * max_length_windows`` tokens and cut into windows of 77.

        Each window is ``[BOS] + 75 tokens + [last]``; see ``split_windows`` for the EOS rules.
        Longer prompts are truncated. Returns a LongTensor ``[len(texts), max_length_windows, 77]``.
        """
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise TypeError("ClipTokenizer expects a list of prompt strings")
        if max_length_windows < 1:
            raise ValueError(f"ClipTokenizer: max_length_windows must be at least 1, got {max_length_windows}")
        rows = [self.split_windows(self.pad_sequence(text, max_length_windows)) for text in texts]
        if not rows:
            return torch.zeros(0, max_length_windows, WINDOW_LENGTH, dtype=torch.long)
        return torch.tensor(rows, dtype=torch.long)

    def pad_sequence(self, text: str, windows: int) -> list[int]:
        """``[BOS] + tokens[:75n] + [EOS]`` padded to ``75n + 2`` with the pad id."""
        tokens = self.encode(text)[: WINDOW_TOKENS * windows]
        sequence = [BOS_TOKEN_ID, *tokens, EOS_TOKEN_ID]
        return sequence + [self.pad_token_id] * (WINDOW_TOKENS * windows + 2 - len(sequence))

    def split_windows(self, sequence: list[int]) -> list[list[int]]:
        """Cut a ``75n + 2`` sequence into n windows of 77 the way kohya does.

        Every window gets BOS first and the sequence's last id last. When pad is not EOS, a window
        whose 76th id is a real token is closed with EOS, and a window that starts with pad (no text
        left) becomes BOS, EOS, pad...; with pad == EOS the windows need no repair.
        """
        count = (len(sequence) - 2) // WINDOW_TOKENS
        windows = []
        for index in range(count):
            start = 1 + index * WINDOW_TOKENS
            window = [BOS_TOKEN_ID, *sequence[start : start + WINDOW_TOKENS], sequence[-1]]
            if self.pad_token_id != EOS_TOKEN_ID:
                if window[-2] not in (EOS_TOKEN_ID, self.pad_token_id):
                    window[-1] = EOS_TOKEN_ID
                if window[1] == self.pad_token_id:
                    window[1] = EOS_TOKEN_ID
            windows.append(window)
        return windows
