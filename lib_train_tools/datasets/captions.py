"""Caption text as tag lists: parse, format, read, and merge with generated tags.

Tags are comma-separated (newlines count as commas), trimmed, empty ones dropped, and
de-duplicated within a caption keeping the first occurrence, so order is kept. A natural-language
caption without commas is simply one "tag". Underscores become spaces only on request
(booru tags come with underscores; kaomoji such as ``^_^`` need them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

CAPTION_EXTENSIONS = (".txt", ".caption")
TAG_SEPARATOR = ", "
CAPTION_POLICIES = ("keep", "ignore", "prepend", "append")


class CaptionError(ValueError):
    """A caption file cannot be read as text, or a caption option is wrong."""


def parse_tags(text: str, underscores_to_spaces: bool = False) -> list[str]:
    """Split a caption into its tags (trimmed, no empties, duplicates dropped, order kept)."""
    pieces = text.replace("\r", "\n").replace("\n", ",").split(",")
    return dedupe(clean_tag(p, underscores_to_spaces) for p in pieces)


def clean_tag(tag: str, underscores_to_spaces: bool = False) -> str:
    """One tag trimmed, inner runs of whitespace collapsed, underscores optionally replaced."""
    if underscores_to_spaces:
        tag = tag.replace("_", " ")
    return " ".join(tag.split())


def dedupe(tags: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for tag in tags:
        if tag and tag not in seen:
            seen.add(tag)
            kept.append(tag)
    return kept


def format_tags(tags: Sequence[str]) -> str:
    return TAG_SEPARATOR.join(dedupe(tags))


def decode_caption(data: bytes, name: str) -> str:
    """Caption bytes as text (UTF-8, a BOM allowed); refuses binary data with a reason."""
    if b"\x00" in data:
        raise CaptionError(f"{name}: not a text file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaptionError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def read_caption_file(path: str | Path) -> str:
    path = Path(path)
    return decode_caption(path.read_bytes(), path.name)


def merge_captions(existing: str | None, generated: Sequence[str], policy: str) -> list[str]:
    """Combine a user's caption with generated tags.

    ``keep``: the existing caption when there is one, else the generated tags; ``ignore``: only the
    generated tags; ``prepend``: generated tags first, then the existing ones; ``append``: existing
    tags first, then the generated ones.
    """
    if policy not in CAPTION_POLICIES:
        raise CaptionError(f"caption policy {policy!r} is not one of {', '.join(CAPTION_POLICIES)}")
    own = parse_tags(existing) if existing else []
    gen = dedupe(clean_tag(t) for t in generated)
    if policy == "keep":
        return own if existing is not None and own else gen
    if policy == "ignore":
        return gen
    if policy == "prepend":
        return dedupe(gen + own)
    return dedupe(own + gen)
