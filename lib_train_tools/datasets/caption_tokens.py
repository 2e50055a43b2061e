"""Over-long captions of a version, for the dataset view: which images, how many tokens, the limit.

Counted exactly as the trainer counts (``train.data.caption_checks``): the caption as trained,
with the version's ``caption_prefix``/``caption_suffix``/``keep_tokens_separator``, BPE-encoded by
the CLIP tokenizer, against ``75 x (max_token_length // 75)`` tokens (``max_token_length`` from the
argument, else the version's settings, else 75). The tokenizer is loaded on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..projects.layout import VersionPaths
from ..projects.settings import load_settings
from .tag_curation import current_captions
from .tag_journal import CurationError

MAX_TOKEN_LENGTH_KEY = "max_token_length"


@dataclass(frozen=True)
class CaptionLength:
    """One processed image whose caption is cut off in training."""

    image: str  # processed stem, as in the gallery and the tag editor
    tokens: int
    limit: int
    note: str  # e.g. "112 tokens, only the first 75 are trained: set max_token_length to 150 or 225 ..."


def long_captions(
    version: VersionPaths,
    max_token_length: int | None = None,
    count: Callable[[str], int] | None = None,
) -> list[CaptionLength]:
    """Processed images whose caption is over the token limit, longest first (empty before preprocessing)."""
    from ..train.data import caption_checks as checks

    settings = load_settings(version)
    chosen = max_token_length if max_token_length is not None else _as_int(settings.get(MAX_TOKEN_LENGTH_KEY))
    try:
        captions = current_captions(version)
    except CurationError:
        return []
    options = _caption_options(settings)
    found = checks.find_long_captions(
        sorted(captions.items()), options, checks.token_windows(chosen), count or checks.count_tokens
    )
    return [CaptionLength(c.name, c.tokens, c.limit, _note(c.tokens, c.limit)) for c in found]


def trained_caption(version: VersionPaths, caption: str) -> str:
    """``caption`` as the text encoder gets it with the version's prefix, suffix and keep-tokens
    separator (without the random parts: dropout, shuffle), e.g. the folder's class tokens of an
    image without a caption."""
    from ..train.data.caption_checks import trained_text

    return trained_text(caption, _caption_options(load_settings(version)))


def long_caption_advice(found: list[CaptionLength]) -> str:
    """What to do about ``found`` (from ``long_captions``): a longer max_token_length, or shorter captions."""
    from ..train.data.caption_checks import length_advice

    return length_advice(found[0].limit, max(c.tokens for c in found)) if found else ""


def _note(tokens: int, limit: int) -> str:
    from ..train.data.caption_checks import length_advice

    return f"{tokens} tokens, only the first {limit} are trained: {length_advice(limit, tokens)}"


def _caption_options(settings: Mapping[str, Any]):
    from ..train.data.captions import CaptionOptions

    def text(key: str) -> str:
        value = settings.get(key)
        return value if isinstance(value, str) else ""

    keep = _as_int(settings.get("keep_tokens")) or 0
    return CaptionOptions(prefix=text("caption_prefix"), suffix=text("caption_suffix"), keep_tokens=max(0, keep),
                          keep_tokens_separator=text("keep_tokens_separator"))


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
