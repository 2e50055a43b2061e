"""Handlers of the Results tab's Publish form: copy a run's LoRA file into the LoRA folder.

Plain functions (no gradio). ``FORM`` is the form in output order: the checkpoint, the name, the
activation text, the preferred weight, the notes, the card picture (a path relative to the run
folder, or ``NO_IMAGE``) and its view, the result message, the text to paste into a prompt, the
"Overwrite" and "Cancel" buttons of the confirmation step and the name waiting for it.

A name that is taken is never replaced silently: publishing answers with the conflict, shows the
two buttons and remembers the name. Only "Overwrite" with that same name in the box replaces it;
a changed name asks again. A file already in the LoRA folder (published automatically when the run
ended, or earlier) is not copied a second time without a word: publishing it under another name
offers to rename that copy instead ("Rename instead"); Publish pressed again keeps both. The
picture defaults to the newest preview cell of that checkpoint at weight 1, else the run's last
sample image.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any

from ..projects import load_settings
from ..projects.layout import VersionPaths
from ..results.outcomes import Publication, read_outcomes, record_publication
from ..results.publish import (
    PublishConflict,
    default_notes,
    default_publish_name,
    free_name,
    publish,
    rename_published,
    same_content,
)
from ..results.runs import RunInfo
from . import preview_actions
from . import results_report as report
from .replies import NO_CHANGE, Reply, Update, choices, info, ok

FORM = ("checkpoint", "name", "activation", "weight", "notes", "image", "image_view", "result", "lora_text",
        "overwrite", "cancel", "pending")
PICTURE = ("image", "image_view")
CONFIRM = ("result", "lora_text", "overwrite", "cancel", "pending")
NO_IMAGE = "(no picture)"
ACTIVATION_SETTING = "activation_tag"
OVERWRITE_LABEL, RENAME_LABEL = "Overwrite", "Rename instead"
RENAME = "rename:"  # marks a pending rename (then the published path and the new name, one per line)


def form_values(services, version: VersionPaths | None, run: RunInfo | None) -> tuple:
    """The form's defaults for ``run`` (everything empty without one)."""
    hidden = Update.of(visible=False)
    if version is None or run is None or not run.all_checkpoints:
        return (choices([], None), "", "", 1.0, "", choices([NO_IMAGE], NO_IMAGE), None, "", "", hidden, hidden, "")
    checkpoint = (run.final or run.all_checkpoints[-1]).path.name
    name = free_name(services.host.lora_dir(), default_publish_name(version.project, version.name))
    activation = load_settings(version).get(ACTIVATION_SETTING) or ""
    return ((choices([c.path.name for c in run.all_checkpoints], checkpoint), name, activation, 1.0,
             notes_for(version, run, checkpoint)) + picture_values(run, checkpoint)
            + ("", "", hidden, hidden, ""))


def refreshed(services, version: VersionPaths, run: RunInfo, checkpoint: str | None) -> tuple:
    """After reading the run again: what the user typed stays; only the file list is new (the
    whole form is made again when the chosen file is gone)."""
    names = [c.path.name for c in run.all_checkpoints]
    if checkpoint not in names:
        return form_values(services, version, run)
    return (choices(names, checkpoint),) + (NO_CHANGE,) * (len(FORM) - 1)


def notes_for(version: VersionPaths, run: RunInfo, checkpoint: str | None) -> str:
    found = _checkpoint(run, checkpoint)
    return default_notes(version.project, version.name, run.name, epoch=found.epoch, steps=found.step)


def checkpoint_changed(version: VersionPaths, run: RunInfo, checkpoint: str | None) -> Reply:
    """New notes and picture for another checkpoint."""
    return Reply(None, (notes_for(version, run, checkpoint),) + picture_values(run, checkpoint))


def picture_values(run: RunInfo, checkpoint: str | None, picked: str | None = None) -> tuple:
    """(picture choices with the default or ``picked`` chosen, its view) for ``checkpoint``."""
    cells = [(rel, cell) for rel, cell in preview_actions.preview_cells(run) if cell.get("checkpoint") == checkpoint]
    samples = [f"{p.parent.name}/{p.name}" for p in reversed(run.samples)]
    options = [rel for rel, _ in cells] + samples
    default = next((rel for rel, cell in cells if cell.get("weight") == 1), samples[0] if samples else NO_IMAGE)
    if picked and picked not in options:
        options.insert(0, picked)
    value = picked or default
    return choices([NO_IMAGE] + options, value), image_path(run, value)


def image_path(run: RunInfo, relative: str | None) -> str | None:
    """The absolute path of a picture choice (None for none); ValueError outside the run folder."""
    if not relative or relative == NO_IMAGE:
        return None
    path = (run.dir / relative).resolve()
    if run.dir.resolve() not in path.parents or not path.is_file():
        raise ValueError(f"the picture {relative!r} is not an image of this run")
    return str(path)


def pick_cell(run: RunInfo, checkpoint: str | None, folder: str | None, index: Any) -> Reply:
    """A clicked preview cell becomes the card picture."""
    relative = preview_actions.cell_at(run, folder, index)
    if relative is None:
        return Reply(None, (NO_CHANGE, NO_CHANGE))
    return Reply(info(f"card picture: {relative}"), picture_values(run, checkpoint, relative))


def show_picture(run: RunInfo, relative: str | None) -> Reply:
    return Reply(None, (image_path(run, relative),))


def publish_run(services, version: VersionPaths, run: RunInfo, checkpoint: str | None, name: str,
                activation: str, weight: Any, notes: str, picture: str | None, *,
                confirmed: str | None = None, pending: str | None = None) -> Reply:
    """Publish; ``CONFIRM`` values plus the run's new summary. ``confirmed``: the name the user
    agreed to overwrite (only that name is replaced), or the rename they agreed to (`RENAME`).
    ``pending``: what the page asked last; Publish pressed again after a rename was offered makes
    the second copy after all."""
    source = _checkpoint(run, checkpoint).path
    weight = _weight(weight)
    name = (name or "").strip()
    renamed_from = None
    if confirmed and confirmed.startswith(RENAME):
        old, _, new = confirmed[len(RENAME):].partition("\n")
        try:  # the copy is renamed, then written over with the form's card and picture, as asked
            name = confirmed = rename_published(Path(old), new).stem
        except PublishConflict as conflict:
            return _ask(run, conflict)
        renamed_from = Path(old).stem
    copy = _published_copy(run, source, Path(services.host.lora_dir()))
    if confirmed is None and copy is not None and copy.path.stem != name and pending != _rename_token(copy, name):
        return _offer_rename(run, copy, name)
    overwrite = confirmed is not None and confirmed == name
    try:
        target = publish(source, services.host.lora_dir(), (name or "").strip(), activation_text=activation or "",
                         preferred_weight=weight, notes=notes or "", preview_image=_picture(run, picture),
                         overwrite=overwrite)
    except PublishConflict as conflict:
        return _ask(run, conflict)
    record_publication(run.dir, target, source, auto=False)
    services.host.lora_published(target)
    hidden = Update.of(visible=False)
    with_picture = picture is not None and picture != NO_IMAGE
    done = (f"renamed {renamed_from} to {target.stem} in the LoRA folder (no second copy was made); card updated"
            if renamed_from is not None else f"published {source.name} as {target}")
    return Reply(ok(done),
                 (result_html(target, with_picture), lora_text(target.stem, weight, activation), hidden, hidden, "",
                  report.summary_html(run, read_outcomes(run.dir))))


def _published_copy(run: RunInfo, source: Path, lora_dir: Path) -> Publication | None:
    """The newest publication of ``source`` still in the (current) LoRA folder with the same bytes."""
    for pub in sorted(read_outcomes(run.dir).published, key=lambda p: -p.time):
        path = lora_dir / pub.path.name
        if pub.checkpoint == source.name and path.is_file() and same_content(path, source):
            return dataclasses.replace(pub, path=path)
    return None


def _rename_token(copy: Publication, name: str) -> str:
    return f"{RENAME}{copy.path}\n{name}"


def _offer_rename(run: RunInfo, copy: Publication, name: str) -> Reply:
    how = "automatically when the run ended" if copy.auto else "earlier"
    text = (f"{copy.checkpoint} is already in the LoRA folder as “{copy.path.stem}” (published {how}). "
            f"Press “Rename instead” to give that file the name “{name}” rather than making a second copy, "
            f"or press Publish again to keep both.")
    return Reply(info(text), (f'<p class="tt-confirm">{html.escape(text)}</p>', "",
                              Update.of(visible=True, value=RENAME_LABEL), Update.of(visible=True),
                              _rename_token(copy, name), NO_CHANGE))


def _ask(run: RunInfo, conflict: PublishConflict) -> Reply:
    text = (f"A LoRA named “{conflict.name}” already exists ({conflict.existing}). Press Overwrite to replace it, "
            f"or choose another name.")
    shown = Update.of(visible=True)
    return Reply(info(text), (f'<p class="tt-confirm">{html.escape(text)}</p>', "",
                              Update.of(visible=True, value=OVERWRITE_LABEL), shown, conflict.name, NO_CHANGE))


def cancel_overwrite() -> Reply:
    hidden = Update.of(visible=False)
    return Reply(info("nothing was overwritten"), ("", NO_CHANGE, hidden, hidden, ""))


def result_html(target: Path, with_picture: bool) -> str:
    files = [target, target.with_suffix(".json")]
    files += [target.with_name(target.stem + ".preview.png")] if with_picture else []
    items = "".join(f"<li><code>{html.escape(str(p))}</code></li>" for p in files)
    return f"<p>Published <b>{html.escape(target.stem)}</b>:</p><ul>{items}</ul>"


def lora_text(name: str, weight: float, activation: str) -> str:
    """What to paste into a prompt: the WebUI's tag at the preferred weight, then the trigger word."""
    shown = weight if weight else 1.0
    return f"<lora:{name}:{shown:g}> {activation or ''}".strip()


def _checkpoint(run: RunInfo, name: str | None):
    found = next((c for c in run.all_checkpoints if c.path.name == name), None)
    if found is None:
        raise ValueError(f"choose the LoRA file to publish ({name!r} is not a file of run {run.name})")
    return found


def _weight(value: Any) -> float:
    try:
        return float(value if value not in (None, "") else 1.0)
    except (TypeError, ValueError):
        raise ValueError(f"the preferred weight must be a number, got {value!r}") from None


def _picture(run: RunInfo, picture: str | None) -> Path | None:
    path = image_path(run, picture)
    return Path(path) if path else None
