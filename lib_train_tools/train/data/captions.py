"""Per-sample caption processing, in kohya's order.

1. ``prefix + " " + caption + " " + suffix`` (prefix and suffix take part in shuffling);
2. whole-caption dropout: ``""`` with probability ``dropout_rate``, or always in epochs whose
   number (counted from 1) is a multiple of ``dropout_every_n_epochs``;
3. tag handling (when shuffling, dropping tags, or when ``keep_tokens_separator`` occurs): split on
   ``separator``; the fixed head is the first ``keep_tokens`` tags, or the text before
   ``keep_tokens_separator`` (text after a second occurrence is a fixed tail); the flexible tags
   are shuffled, then each is dropped with probability ``tag_dropout_rate``; re-joined with ", ";
4. ``secondary_separator`` replaced by ``separator`` (tags grouped with it move together).

Unlike kohya, the keep-tokens separator is also removed when nothing is shuffled, so it never
reaches the text encoder as literal text. Randomness comes from the caller's generator, which the
dataset seeds from (seed, epoch, sample), so results are reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TAG_JOINER = ", "


@dataclass(frozen=True)
class CaptionOptions:
    """Caption settings (kohya subset keys of the same meaning in brackets)."""

    prefix: str = ""  # caption_prefix
    suffix: str = ""  # caption_suffix
    shuffle: bool = False  # shuffle_caption
    keep_tokens: int = 0  # keep_tokens
    keep_tokens_separator: str = ""  # keep_tokens_separator, e.g. "|||"
    separator: str = ","  # caption_separator
    secondary_separator: str = ""  # secondary_separator, e.g. ";;;"
    dropout_rate: float = 0.0  # caption_dropout_rate
    tag_dropout_rate: float = 0.0  # caption_tag_dropout_rate
    dropout_every_n_epochs: int = 0  # caption_dropout_every_n_epochs

    def __post_init__(self) -> None:
        for name in ("dropout_rate", "tag_dropout_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"caption option {name}={value} must be between 0 and 1")
        for name in ("keep_tokens", "dropout_every_n_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"caption option {name}={getattr(self, name)} must not be negative")
        if not self.separator:
            raise ValueError("caption option separator must not be empty")

    @property
    def is_deterministic(self) -> bool:
        """True when a caption's text never varies except for whole-caption dropout."""
        return not self.shuffle and self.tag_dropout_rate == 0.0


def add_prefix_suffix(caption: str, options: CaptionOptions) -> str:
    """Step 1: join prefix, caption and suffix with single spaces (empty parts left out)."""
    parts = [options.prefix, caption, options.suffix]
    return " ".join(part for part in parts if part)


def is_dropped(options: CaptionOptions, rng: random.Random, epoch: int) -> bool:
    """Step 2: whether the whole caption becomes empty for this sample (``epoch`` counted from 0)."""
    every_n = options.dropout_every_n_epochs
    if every_n > 0 and (epoch + 1) % every_n == 0:
        return True
    return options.dropout_rate > 0.0 and rng.random() < options.dropout_rate


def split_tags(text: str, separator: str) -> list[str]:
    """Tags between separators, stripped, empty ones removed."""
    return [tag.strip() for tag in text.split(separator) if tag.strip()]


def split_fixed_flexible(caption: str, options: CaptionOptions) -> tuple[list[str], list[str], list[str]]:
    """(fixed head, flexible middle, fixed tail) tags of a caption."""
    marker = options.keep_tokens_separator
    if marker and marker in caption:
        head, rest = caption.split(marker, 1)
        tail = ""
        if marker in rest:
            rest, tail = rest.split(marker, 1)
        sep = options.separator
        return split_tags(head, sep), split_tags(rest, sep), split_tags(tail, sep)
    tags = split_tags(caption, options.separator)
    keep = options.keep_tokens
    return tags[:keep], tags[keep:], []


def needs_tag_processing(caption: str, options: CaptionOptions) -> bool:
    marker = options.keep_tokens_separator
    return options.shuffle or options.tag_dropout_rate > 0.0 or bool(marker and marker in caption)


def rearrange_tags(caption: str, options: CaptionOptions, rng: random.Random) -> str:
    """Step 3: keep the fixed tags, shuffle then drop flexible ones, join with ", "."""
    fixed, flexible, tail = split_fixed_flexible(caption, options)
    if options.shuffle:
        rng.shuffle(flexible)
    if options.tag_dropout_rate > 0.0:
        flexible = [tag for tag in flexible if rng.random() >= options.tag_dropout_rate]
    return TAG_JOINER.join(fixed + flexible + tail)


def process_caption(caption: str, options: CaptionOptions, rng: random.Random, epoch: int) -> str:
    """The caption one sample is trained with in ``epoch`` (counted from 0)."""
    text = add_prefix_suffix(caption, options)
    if is_dropped(options, rng, epoch):
        return ""
    if needs_tag_processing(text, options):
        text = rearrange_tags(text, options, rng)
    if options.secondary_separator:
        text = text.replace(options.secondary_separator, options.separator)
    return text


def steady_caption(caption: str, options: CaptionOptions) -> str:
    """The caption as the text encoder gets it, without the random parts (dropout, shuffle)."""
    steady = CaptionOptions(
        prefix=options.prefix,
        suffix=options.suffix,
        keep_tokens=options.keep_tokens,
        keep_tokens_separator=options.keep_tokens_separator,
        separator=options.separator,
        secondary_separator=options.secondary_separator,
    )
    return process_caption(caption, steady, random.Random(0), 0)


def possible_captions(caption: str, options: CaptionOptions) -> tuple[str, ...]:
    """Every text ``process_caption`` can return for ``caption``; only for deterministic options.

    Used to pre-encode text-encoder outputs before the encoders leave the GPU.
    """
    if not options.is_deterministic:
        raise ValueError("captions vary per step (shuffle or tag dropout is on); they cannot be listed in advance")
    text = steady_caption(caption, options)
    can_drop = options.dropout_rate > 0.0 or options.dropout_every_n_epochs > 0
    return (text, "") if can_drop and text else (text,)
