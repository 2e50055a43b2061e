"""Caption problems worth one warning before training: empty caption files and over-long captions.

Token counting is the trainer's: the caption as trained (prefix and suffix added, keep-tokens
separators removed; no dropout or shuffle, which do not change the length) is BPE-encoded by
``models.tokenizer.ClipTokenizer.encode`` (all SD text encoders share that vocabulary), and the
text encoders read ``75 x windows`` of those tokens, ``windows = max_token_length // 75``
(``max_token_length`` unset: 75, one window). Everything after that is cut off. The dataset view
counts with the same functions (``datasets.caption_tokens``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .captions import CaptionOptions, steady_caption
from .folders import ImageItem

WINDOW_TOKENS = 75  # tokens per 77-token window (BOS and EOS take the other two)
MAX_TOKEN_LENGTHS = (75, 150, 225)  # what the max_token_length option accepts
CountTokens = Callable[[str], int]


@dataclass(frozen=True)
class LongCaption:
    """One image whose caption is longer than the text encoders read."""

    name: str  # image file name
    tokens: int
    limit: int


def token_windows(max_token_length: int | None) -> int:
    """Windows of 75 tokens for a ``max_token_length`` setting (None: one window), as the trainer counts."""
    return max(1, (max_token_length or WINDOW_TOKENS) // WINDOW_TOKENS)


def token_limit(windows: int) -> int:
    """Caption tokens the text encoders read with ``windows`` windows."""
    return WINDOW_TOKENS * max(1, windows)


@lru_cache(maxsize=4096)
def count_tokens(text: str) -> int:
    """CLIP BPE tokens of ``text`` (without BOS/EOS), exactly what the trainer's tokenizer produces."""
    from ...models.tokenizer import CLIP_L_PAD_TOKEN_ID, ClipTokenizer

    return len(ClipTokenizer(CLIP_L_PAD_TOKEN_ID).encode(text))


def trained_text(caption: str, options: CaptionOptions) -> str:
    """The caption as the text encoder gets it, without the random parts (dropout, shuffle)."""
    return steady_caption(caption, options)


def find_long_captions(
    named_captions: Sequence[tuple[str, str]],
    options: CaptionOptions,
    windows: int,
    count: CountTokens = count_tokens,
) -> list[LongCaption]:
    """The (name, caption) pairs whose trained text is over the limit, longest first."""
    limit = token_limit(windows)
    found = []
    for name, caption in named_captions:
        tokens = count(trained_text(caption, options))
        if tokens > limit:
            found.append(LongCaption(name, tokens, limit))
    return sorted(found, key=lambda c: (-c.tokens, c.name))


def length_advice(limit: int, longest: int) -> str:
    """Which max_token_length keeps more, or that the captions must be shortened."""
    longer = [n for n in MAX_TOKEN_LENGTHS if n > limit]
    if not longer:
        return f"{limit} is the most max_token_length allows: shorten those captions"
    enough = [n for n in longer if n >= longest]
    choice = " or ".join(str(n) for n in longer)
    keeps = f" ({enough[0]} keeps every word)" if enough else ""
    return f"set max_token_length to {choice} to keep more{keeps}, or shorten those captions"


def long_caption_warning(long: Sequence[LongCaption], total: int) -> str | None:
    """One warning for every over-long caption of a run, or None."""
    if not long:
        return None
    limit, top = long[0].limit, long[0]
    windows = limit // WINDOW_TOKENS
    return (
        f"{len(long)} of {total} captions are longer than the {limit} tokens the text encoder reads "
        f"(max_token_length {limit}: {windows} window{'s' if windows > 1 else ''} of {WINDOW_TOKENS}); "
        f"the rest of each is cut off in training (longest: {top.name}, {top.tokens} tokens); "
        f"{length_advice(limit, top.tokens)}"
    )


def empty_caption_warning(items: Sequence[ImageItem]) -> str | None:
    """One warning for caption files that hold no text (their images use the folder's class tokens)."""
    empty = [item for item in items if item.empty_caption_file]
    if not empty:
        return None
    first = empty[0].caption_file
    return (
        f"{len(empty)} caption file{'s are' if len(empty) > 1 else ' is'} empty (e.g. '{first}'); "
        "those images are trained with their folder's name (class tokens) as the caption, "
        "as if they had no caption file; write captions into them to change that"
    )


def dataset_warnings(
    items: Sequence[ImageItem],
    repeats: Sequence[int],
    options: CaptionOptions,
    windows: int,
    count: CountTokens = count_tokens,
) -> list[str]:
    """Caption warnings of the images in use (``repeats`` > 0), each problem once."""
    used = [item for item, r in zip(items, repeats) if r]
    long = find_long_captions([(item.path.name, item.caption) for item in used], options, windows, count)
    found = [empty_caption_warning(used), long_caption_warning(long, len(used))]
    return [w for w in found if w]
