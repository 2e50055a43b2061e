"""Handlers of the tag editor: the tag table, activation tag, prune, merge, per-image edit, undo.

Plain functions over ``datasets.tag_curation`` (no gradio). Output group ``TAGS`` is (tag table,
tag chooser, activation tag). Every change also returns the ``GALLERY`` group (see
``gallery.py``) first, because captions show under the images.
"""

from __future__ import annotations

from typing import Sequence

from ..datasets.tag_curation import (
    add_tag,
    edit_caption,
    merge_tags,
    prune_tags,
    set_activation_tag,
    tag_frequencies,
    underscores_to_spaces,
    undo,
)
from ..datasets.tag_journal import CurationError, load_journal
from ..jobs.run_options import get_run_param
from ..projects import load_settings, update_settings
from ..projects.layout import VersionPaths
from .gallery import gallery_items, gallery_values
from .replies import NO_CHANGE, Reply, Table, Update, choices, ok
from .selection import require_version

TAG_HEADERS = ("tag", "images", "share")
ACTIVATION_SETTING = get_run_param("activation_tag").name  # a run setting: the published card's activation text


def activation_tag(version: VersionPaths) -> str:
    """The activation tag the curation journal currently puts first ("" when none)."""
    try:
        ops = load_journal(version)
    except CurationError:
        return ""
    tags = [op.get("tag", "") for op in ops if op.get("op") == "activation"]
    return tags[-1] if tags else ""


def tag_table(version: VersionPaths | None, filter_text: str = "") -> Table:
    """Tags with image counts and shares, most frequent first; ``filter_text`` keeps matching tags."""
    if version is None or version.processed_dir() is None:
        return Table(TAG_HEADERS, ())
    try:
        counts = tag_frequencies(version)
    except CurationError:
        return Table(TAG_HEADERS, ())
    wanted = (filter_text or "").strip().casefold()
    rows = tuple((c.tag, c.count, f"{c.share:.0%}") for c in counts if wanted in c.tag.casefold())
    return Table(TAG_HEADERS, rows)


def tags_values(version: VersionPaths | None, filter_text: str = "") -> tuple:
    """(tag table, tag chooser with every tag, activation tag)."""
    table = tag_table(version, "")
    all_tags = [row[0] for row in table.rows]
    shown = tag_table(version, filter_text) if filter_text else table
    current = activation_tag(version) if version is not None else ""
    return shown, choices(all_tags, []), current


def _sync_activation_setting(version: VersionPaths) -> None:
    """Keep the ``activation_tag`` run setting (the published card's activation text) current."""
    current = activation_tag(version) or None
    if load_settings(version).get(ACTIVATION_SETTING) != current:
        update_settings(version, {ACTIVATION_SETTING: current})


def _changed(services, selection: str, change, chosen_image: str | None = None) -> Reply:
    version = require_version(services, selection)
    result = change(version)
    _sync_activation_setting(version)
    services.store.touch(version)
    notice = ok(f"{result.description}: {len(result.changed)} caption(s) changed (Undo takes it back)")
    return Reply(notice, gallery_values(version, chosen_image) + tags_values(version))


def filter_tags(services, selection: str, filter_text: str) -> Reply:
    version = require_version(services, selection)
    return Reply(None, (tag_table(version, filter_text),))


def set_activation(services, selection: str, tag: str) -> Reply:
    reply = _changed(services, selection, lambda v: set_activation_tag(v, tag))
    note = " keep_tokens is now 1, so shuffling keeps it first"
    done = reply.notice.text if reply.notice is not None else f"activation tag {tag!r} set"
    return Reply(ok(done + ";" + note), reply.values)


def prune(services, selection: str, tags: Sequence[str] | None) -> Reply:
    return _changed(services, selection, lambda v: prune_tags(v, list(tags or [])))


def merge(services, selection: str, tags: Sequence[str] | None, target: str) -> Reply:
    return _changed(services, selection, lambda v: merge_tags(v, list(tags or []), target))


def add_to_all(services, selection: str, tag: str) -> Reply:
    """Add ``tag`` at the end of every caption that lacks it."""
    def change(version):
        stems = [item.stem for item in gallery_items(version)[0]]
        return add_tag(version, tag, stems)

    return _changed(services, selection, change)


def underscores(services, selection: str) -> Reply:
    return _changed(services, selection, underscores_to_spaces)


def undo_last(services, selection: str) -> Reply:
    return _changed(services, selection, undo)


def edit(services, selection: str, image: str | None, caption: str) -> Reply:
    if not image:
        raise CurationError("choose an image first (click it in the gallery)")
    return _changed(services, selection, lambda v: edit_caption(v, image, caption or ""), chosen_image=image)


def pick_image(services, selection: str, image: str | None) -> Reply:
    """The caption of the image chosen in the picker."""
    version = require_version(services, selection)
    items = {i.stem: i.caption for i in gallery_items(version)[0]}
    return Reply(None, (items.get(image or "", ""),))


def pick_from_gallery(services, selection: str, index, _value=None) -> Reply:
    """A click on a gallery image chooses it for editing."""
    version = require_version(services, selection)
    items, processed = gallery_items(version)
    if not processed or not isinstance(index, int) or not 0 <= index < len(items):
        return Reply(None, (NO_CHANGE, NO_CHANGE))
    return Reply(None, (Update.of(value=items[index].stem), items[index].caption))


def pick_from_table(services, selection: str, filter_text: str, current: Sequence[str] | None, index,
                    _value=None) -> Reply:
    """A click on any cell of a tag-table row adds that row's tag to the chosen tags."""
    row = index[0] if isinstance(index, (list, tuple)) and index else index
    rows = tag_table(require_version(services, selection), filter_text).rows
    if not isinstance(row, int) or not 0 <= row < len(rows):
        return Reply(None, (NO_CHANGE,))
    chosen = list(current or [])
    if rows[row][0] not in chosen:
        chosen.append(rows[row][0])
    return Reply(None, (Update.of(value=chosen),))
