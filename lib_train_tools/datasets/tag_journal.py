"""The tag-curation operations as pure functions over captions, and their journal on disk.

Curation never edits caption files directly: each operation is appended to
``dataset/curation_journal.json`` and the captions in ``processed/`` are re-rendered as
*base captions* (what preprocessing produced from ``origin/`` and generated tags) with every
journal operation replayed in order. So undo is "drop the last entry and render again", and
re-running preprocessing keeps the user's curation: the new base captions get the same
operations. Operations name images by their processed stem; one whose image is gone is a no-op.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..atomic import atomic_write_json, read_json
from ..projects.layout import VersionPaths
from .captions import dedupe, format_tags, parse_tags

OPERATIONS = ("activation", "prune", "merge", "add", "edit", "underscores")


class CurationError(ValueError):
    """A curation operation cannot be done; the message says why."""


def load_journal(version: VersionPaths) -> list[dict[str, Any]]:
    data = read_json(version.curation_journal_file, default={"ops": []})
    ops = data.get("ops") if isinstance(data, dict) else None
    if not isinstance(ops, list):
        raise CurationError(f"{version.curation_journal_file}: expected {{'ops': [...]}}")
    return ops


def save_journal(version: VersionPaths, ops: Sequence[Mapping[str, Any]]) -> None:
    atomic_write_json(version.curation_journal_file, {"ops": [dict(op) for op in ops]})


def replay(base: Mapping[str, str], ops: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Captions after applying ``ops`` in order to the ``base`` captions (stem -> caption)."""
    tags = {stem: parse_tags(text) for stem, text in base.items()}
    for op in ops:
        tags = apply_op(tags, op)
    return {stem: format_tags(t) for stem, t in tags.items()}


def apply_op(captions: Mapping[str, list[str]], op: Mapping[str, Any]) -> dict[str, list[str]]:
    """One operation over all captions (stem -> tags); returns new lists, inputs untouched."""
    kind = op.get("op")
    if kind == "edit":
        result = dict(captions)
        if op["image"] in result:
            result[op["image"]] = parse_tags(op["caption"])
        return result
    if kind == "add":
        chosen = set(op["images"])
        position = op.get("position", "end")
        return {s: (_add(t, op["tag"], position) if s in chosen else list(t)) for s, t in captions.items()}
    transforms = {
        "activation": lambda t: dedupe([op["tag"]] + [x for x in t if x != op["tag"]]),
        "prune": lambda t: [x for x in t if x not in set(op["tags"])],
        "merge": lambda t: _merge(t, set(op["sources"]), op["target"]),
        "underscores": lambda t: dedupe(x.replace("_", " ") for x in t),
    }
    if kind not in transforms:
        raise CurationError(f"unknown curation operation {kind!r} (known: {', '.join(OPERATIONS)})")
    return {stem: transforms[kind](tags) for stem, tags in captions.items()}


def _merge(tags: list[str], sources: set[str], target: str) -> list[str]:
    """Replace every source tag by ``target`` at the first one's place."""
    merged = [target if t in sources else t for t in tags]
    return dedupe(merged)


def _add(tags: list[str], tag: str, position: str) -> list[str]:
    if tag in tags:
        return list(tags)
    return [tag] + list(tags) if position == "start" else list(tags) + [tag]
