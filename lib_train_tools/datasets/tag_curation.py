"""Tag curation over all captions of a version, with undo.

Reads: ``current_captions``, ``tag_frequencies`` (tag, count, share of images), ``search_tag``.
Changes (each appended to the journal, then ``processed/`` captions re-rendered; see
``tag_journal``): activation tag first in every caption (and ``keep_tokens = 1`` in the version's
settings), prune, merge/replace, add a tag to chosen images, edit one caption, underscores to
spaces, and ``undo``. ``origin/`` is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..atomic import atomic_write_text, read_json
from ..projects.layout import VersionPaths
from ..projects.settings import load_settings, save_settings_unlocked
from .captions import clean_tag, parse_tags
from .tag_journal import CurationError, apply_op, load_journal, replay, save_journal

KEEP_TOKENS_KEY = "keep_tokens"


@dataclass(frozen=True)
class TagCount:
    tag: str
    count: int
    share: float  # fraction of images whose caption has the tag


@dataclass(frozen=True)
class CurationResult:
    """What one change did: the images whose caption changed, and the journal length after it."""

    description: str
    changed: tuple[str, ...]
    journal_length: int


def current_captions(version: VersionPaths) -> dict[str, str]:
    """Processed stem -> caption, as the curation journal makes them."""
    return replay(_base_captions(version), load_journal(version))


def tag_frequencies(version: VersionPaths) -> list[TagCount]:
    """Every tag with its image count and share, most frequent first (ties alphabetical)."""
    captions = current_captions(version)
    counts: dict[str, int] = {}
    for caption in captions.values():
        for tag in parse_tags(caption):
            counts[tag] = counts.get(tag, 0) + 1
    total = max(1, len(captions))
    return [TagCount(t, c, c / total) for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def search_tag(version: VersionPaths, tag: str) -> list[str]:
    """Stems of the images whose caption has ``tag`` (exact tag match after trimming)."""
    wanted = clean_tag(tag)
    return sorted(stem for stem, caption in current_captions(version).items() if wanted in parse_tags(caption))


def set_activation_tag(version: VersionPaths, tag: str) -> CurationResult:
    """Put ``tag`` first in every caption and set ``keep_tokens`` to 1 so shuffling keeps it there."""
    tag = _required_tag(tag, "activation tag")
    with version.lock():
        previous = load_settings(version).get(KEEP_TOKENS_KEY)
        op = {"op": "activation", "tag": tag, "previous_keep_tokens": previous}
        result = _apply_unlocked(version, op, f"activation tag {tag!r} first in every caption")
        settings = load_settings(version)
        settings[KEEP_TOKENS_KEY] = 1
        save_settings_unlocked(version, settings)
    return result


def prune_tags(version: VersionPaths, tags: Sequence[str]) -> CurationResult:
    chosen = _required_tags(tags, "tags to prune")
    return _apply(version, {"op": "prune", "tags": chosen}, f"removed {', '.join(chosen)}")


def merge_tags(version: VersionPaths, sources: Sequence[str], target: str) -> CurationResult:
    """Replace every tag in ``sources`` with ``target`` (kept once, where the first of them was)."""
    merged = _required_tags(sources, "tags to merge")
    target = _required_tag(target, "merge target")
    return _apply(version, {"op": "merge", "sources": merged, "target": target}, f"merged into {target!r}")


def add_tag(version: VersionPaths, tag: str, images: Sequence[str], position: str = "end") -> CurationResult:
    tag = _required_tag(tag, "tag to add")
    if position not in ("start", "end"):
        raise CurationError(f"position {position!r} must be 'start' or 'end'")
    with version.lock():
        _require_images(version, images)
        op = {"op": "add", "tag": tag, "images": sorted(set(images)), "position": position}
        return _apply_unlocked(version, op, f"added {tag!r} to {len(set(images))} image(s)")


def edit_caption(version: VersionPaths, image: str, caption: str) -> CurationResult:
    with version.lock():
        _require_images(version, [image])
        return _apply_unlocked(version, {"op": "edit", "image": image, "caption": caption}, f"edited {image!r}")


def underscores_to_spaces(version: VersionPaths) -> CurationResult:
    return _apply(version, {"op": "underscores"}, "underscores replaced by spaces")


def undo(version: VersionPaths) -> CurationResult:
    """Take back the last operation (an activation tag also gets its old keep_tokens back)."""
    with version.lock():
        ops = load_journal(version)
        if not ops:
            raise CurationError(f"nothing to undo in version {version.name!r}")
        before = current_captions(version)
        last = ops.pop()
        save_journal(version, ops)
        if last["op"] == "activation":
            settings = load_settings(version)
            if last.get("previous_keep_tokens") is None:
                settings.pop(KEEP_TOKENS_KEY, None)
            else:
                settings[KEEP_TOKENS_KEY] = last["previous_keep_tokens"]
            save_settings_unlocked(version, settings)
        after = render_captions_unlocked(version)
    return CurationResult(f"undid {last['op']}", _changed(before, after), len(ops))


def render_captions_unlocked(version: VersionPaths) -> dict[str, str]:
    """Write every processed image's caption file that differs from the journal's result.

    An empty caption gets no file (an old one is removed): the trainer then uses the folder's
    name, as for any image without a caption, instead of training on an empty text.
    """
    captions = current_captions(version)
    folder = version.processed_dir()
    if folder is None:
        return captions
    for stem, caption in captions.items():
        path = folder / f"{stem}.txt"
        if not caption.strip():
            path.unlink(missing_ok=True)
        elif not path.exists() or path.read_text(encoding="utf-8") != caption:
            atomic_write_text(path, caption)
    return captions


def _apply(version: VersionPaths, op: Mapping[str, Any], description: str) -> CurationResult:
    with version.lock():
        return _apply_unlocked(version, op, description)


def _apply_unlocked(version: VersionPaths, op: Mapping[str, Any], description: str) -> CurationResult:
    before = current_captions(version)
    apply_op({s: parse_tags(c) for s, c in before.items()}, op)  # validates before anything is saved
    ops = load_journal(version) + [dict(op)]
    save_journal(version, ops)
    after = render_captions_unlocked(version)
    return CurationResult(description, _changed(before, after), len(ops))


def _base_captions(version: VersionPaths) -> dict[str, str]:
    base = read_json(version.base_captions_file, default=None)
    if not isinstance(base, dict):
        raise CurationError(f"version {version.name!r} has no processed captions yet; preprocess the dataset first")
    return base


def _require_images(version: VersionPaths, images: Sequence[str]) -> None:
    if not images:
        raise CurationError("choose at least one image")
    known = _base_captions(version)
    unknown = sorted(set(images) - set(known))
    if unknown:
        raise CurationError(f"not processed images of {version.name!r}: {', '.join(unknown)}")


def _required_tag(tag: str, what: str) -> str:
    cleaned = clean_tag(tag or "")
    if not cleaned or "," in cleaned:
        raise CurationError(f"{what} {tag!r} must be one non-empty tag without commas")
    return cleaned


def _required_tags(tags: Sequence[str], what: str) -> list[str]:
    if isinstance(tags, str):
        tags = parse_tags(tags)
    cleaned = [_required_tag(t, what) for t in tags]
    if not cleaned:
        raise CurationError(f"no {what} given")
    return list(dict.fromkeys(cleaned))


def _changed(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(sorted(s for s in after if before.get(s) != after[s]))
