"""Handlers of the Dataset tab: gallery, upload, preprocessing, duplicates and auto-tagging.

Plain functions (no gradio). Output groups, in this order wherever they appear together:
``GALLERY`` (images with captions, a note, the per-image picker, its caption), ``TAGS`` (see
``tag_actions``), ``REPORT`` (the last operation's accepted/refused list) and ``DUPLICATES``
(groups and the files offered for dropping).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

from ..contracts import TAGGERS_FOLDER, Tagger, find_wd14_folders
from ..datasets.autotag import autotag
from ..datasets.duplicates import find_duplicates
from ..datasets.captions import CAPTION_EXTENSIONS
from ..datasets.origin_files import drop_images, list_origin
from ..datasets.preprocess import PreprocessOptions, preprocess
from ..datasets.small_images import small_images
from ..datasets.tagger_download import KNOWN_TAGGERS, download_tagger
from ..datasets.taggers import TaggerUnavailable, WD14Tagger
from ..datasets.upload import UploadResult, upload
from ..projects import load_settings
from ..projects.layout import VersionPaths
from . import dataset_report as report
from . import tag_actions
from .gallery import gallery_values
from .replies import NO_CHANGE, Notice, Reply, choices, ok, warning
from .selection import parse_selection, require_version

ProgressFn = Callable[[int, int, str], None]
REPEATS_SETTING = "repeats"


def dataset_view(services, selection: str | None) -> Reply:
    """Everything the Dataset tab shows for the chosen version (on selection change)."""
    version = require_version(services, selection) if parse_selection(selection) else None
    tags = tag_actions.tags_values(version, "")
    return Reply(None, gallery_values(version) + tags + ("",) + ("", choices([], [])))


def upload_files(services, selection: str, paths: Sequence[str], replace: bool,
                 progress: ProgressFn | None = None) -> Reply:
    version = require_version(services, selection)
    if not paths:
        return Reply(ok("no files were given"), (NO_CHANGE,) * 5)
    result = upload(version, list(paths), replace=bool(replace), progress=progress)
    services.store.touch(version)
    return Reply(upload_notice(version, result), (report.upload_report(result),) + gallery_values(version))


def upload_notice(version: VersionPaths, result: UploadResult) -> Notice:
    """What the upload changed, in the words a person needs: images added (or none), and captions
    that wait for an image of the same name."""
    captions = [n for n in result.added if Path(n).suffix.lower() in CAPTION_EXTENSIONS]
    images = [n for n in result.added if n not in captions]
    with_image = {item.stem for item in list_origin(version)}
    waiting = [n for n in captions if Path(n).stem not in with_image]
    rest = f"{len(result.refused)} refused, {len(result.skipped)} skipped"
    wait = (f"{len(waiting)} caption(s) wait for an image of the same name: {', '.join(waiting[:5])}"
            + (", ..." if len(waiting) > 5 else ""))
    if not images:
        matched = len(captions) - len(waiting)
        parts = [f"no images were added ({rest}" + (f"; {wait}" if waiting else "") + ")"]
        if matched:
            parts.append(f"{matched} caption(s) of uploaded images replaced; press Preprocess to use them")
        return (ok if matched and not waiting and not result.refused else warning)("; ".join(parts))
    text = (f"{len(images)} image(s) and {len(captions)} caption(s) added, {rest}; "
            "press Preprocess to prepare them for training")
    if waiting:
        return warning(f"{text}; {wait}")
    return warning(text) if result.refused else ok(text)


def preprocess_options(width, height, mode, anchor, split_ratio, flip, policy, output_format,
                       repeats=None) -> PreprocessOptions:
    """Options from the form (0 or empty split ratio: never split)."""
    if width in (None, "") or height in (None, ""):
        raise ValueError("preprocessing needs a width and a height in pixels")
    ratio = float(split_ratio) if split_ratio not in (None, "") and float(split_ratio) > 0 else None
    return PreprocessOptions(
        width=int(width), height=int(height), mode=mode, crop_anchor=anchor, split_ratio=ratio,
        flip_copies=bool(flip), caption_policy=policy, output_format=output_format, repeats=repeats,
    )


def run_preprocess(services, selection: str, *form, progress: ProgressFn | None = None) -> Reply:
    """Preprocess with the form's options; repeats from the version's settings when set there."""
    version = require_version(services, selection)
    result = _preprocess(version, form, progress)
    services.store.touch(version)
    if not result.outputs:
        notice = warning(f"no training images: {len(result.refused)} refused, and the uploads hold no other image; "
                         "upload images first, then press Preprocess")
    else:
        notice = (warning if result.refused else ok)(
            f"{len(result.outputs)} training image(s) ready, {len(result.refused)} refused")
    values = (report.preprocess_report(result),) + gallery_values(version) + tag_actions.tags_values(version, "")
    return Reply(notice, values)


def _preprocess(version: VersionPaths, form: Sequence, progress: ProgressFn | None):
    repeats = load_settings(version).get(REPEATS_SETTING)
    repeats = repeats if isinstance(repeats, int) and not isinstance(repeats, bool) and repeats >= 1 else None
    return preprocess(version, dataclasses.replace(preprocess_options(*form), repeats=repeats), progress)


def find_duplicate_groups(services, selection: str, progress: ProgressFn | None = None) -> Reply:
    version = require_version(services, selection)
    found = find_duplicates(version, progress=progress)
    offered = sorted({name for group in found.exact + found.near for name in group})
    notice = ok(f"{len(found.exact)} group(s) of identical files, {len(found.near)} of near duplicates")
    return Reply(notice, (report.duplicates_report(found), choices(offered, [])))


def drop_chosen(services, selection: str, names: Sequence[str] | None) -> Reply:
    """Move the chosen uploaded files out of the dataset (into ``dataset/dropped/``)."""
    version = require_version(services, selection)
    if not names:
        raise ValueError("choose the files to drop first")
    target = drop_images(version, [Path(n).stem for n in names])
    notice = ok(f"dropped {len(names)} file(s) into {target}; press Preprocess to update the training images")
    return Reply(notice, ("", choices([], [])) + gallery_values(version))


def drop_small(services, selection: str) -> Reply:
    """Set aside exactly the uploads the gallery flags as small (``drop_images``, into ``dataset/dropped/``)."""
    version = require_version(services, selection)
    small = small_images(version)
    if not small:
        return Reply(ok("no small images to drop: training enlarges none of the uploaded images 2x or more"),
                     (report.dropped_small_report([], None), NO_CHANGE, NO_CHANGE) + gallery_values(version))
    target = drop_images(version, [s.stem for s in small])
    services.store.touch(version)
    notice = ok(f"dropped {len(small)} small image(s) into {target}; press Preprocess to update the training images")
    return Reply(notice, (report.dropped_small_report(small, target, version.origin), "", choices([], []))
                 + gallery_values(version))


def tagger_roots(services) -> list[Path]:
    """Folders whose subfolders are WD14 taggers: the host's taggers folder first (downloads go
    there: the WebUI's setting, default ``<models>/train_tools_taggers``; the standalone app's
    ``--taggers``, default ``<output_root>/taggers``), then ``<output_root>/taggers``, where
    earlier versions downloaded them, so no tagger a person already has disappears."""
    host = services.host
    legacy = Path(host.output_root()) / TAGGERS_FOLDER
    configured = getattr(host, "taggers_dir", None)
    primary = Path(configured()) if callable(configured) else legacy
    return [primary] if primary == legacy else [primary, legacy]


def available_taggers(services) -> list[Tagger]:
    """The host's taggers, plus WD14 folders under ``tagger_roots`` it did not list (first name wins)."""
    taggers = list(services.host.taggers())
    known = {t.name for t in taggers}
    for root in tagger_roots(services):
        for folder in find_wd14_folders(root):
            tagger: Tagger = WD14Tagger(folder)
            if tagger.name not in known:
                taggers.append(tagger)
                known.add(tagger.name)
    return taggers


def tagger_choices(services) -> Reply:
    names = [t.name for t in available_taggers(services)]
    notice = None if names else ok(
        f"no tagger found: download one below, or put a WD14 tagger folder (model.onnx and selected_tags.csv) "
        f"into {tagger_roots(services)[0]} and press refresh"
    )
    return Reply(notice, (choices(names, names[0] if names else None),))


def downloadable_taggers() -> list[str]:
    """Names of the WD14 taggers the tab can download (the first is the suggested one)."""
    return [t.name for t in KNOWN_TAGGERS]


def download_known_tagger(services, name: str | None, progress: ProgressFn | None = None) -> Reply:
    """Download tagger ``name`` into the taggers folder (``tagger_roots``' first; kept when already
    there), then list the taggers again with it chosen. Progress is shown in MiB."""
    known = {t.name: t for t in KNOWN_TAGGERS}
    if name not in known:
        raise ValueError(f"choose one of the taggers to download ({', '.join(known)})")
    mib = 1 << 20

    def in_mib(done: int, total: int, file: str) -> None:
        if progress is not None:
            progress(done // mib, max(1, -(-total // mib)), f"MiB, {file}")

    folder = download_tagger(known[name].repo_id, tagger_roots(services)[0], in_mib)
    tagger = WD14Tagger(folder)
    names = [t.name for t in available_taggers(services)]
    state = tagger.availability()
    text = f"{tagger.name} is ready in {folder}; choose it above and press Auto-tag"
    notice = ok(text) if state.available else warning(f"{text}, but {state.reason}: {state.install_hint}")
    return Reply(notice, (choices(names, tagger.name if tagger.name in names else None),))


def run_autotag(services, selection: str, tagger_name: str, threshold, *form,
                progress: ProgressFn | None = None, character_threshold=None, include_rating=None,
                character_tags_first=None, batch_size=None) -> Reply:
    """Tag the uploaded images, then preprocess again so the tags reach the captions.

    ``threshold`` is the general tags' threshold; the keywords (WD14 taggers only; None or "" keeps
    the tagger's own) are the ``WD14Options`` fields of the same names."""
    version = require_version(services, selection)
    tagger = _tagger(services, tagger_name, threshold)
    if isinstance(tagger, WD14Tagger):
        tagger = tagger.with_options(**wd14_changes(character_threshold, include_rating, character_tags_first,
                                                    batch_size))
    result = autotag(version, tagger, progress=progress)
    done = _preprocess(version, form, progress)
    services.store.touch(version)
    html_report = report.autotag_report(result, tagger.name) + report.preprocess_report(done)
    notice = ok(f"{tagger.name} tagged {result.tagged} image(s); captions merged by the caption rule")
    return Reply(notice, (html_report,) + gallery_values(version) + tag_actions.tags_values(version, ""))


def wd14_changes(character_threshold=None, include_rating=None, character_tags_first=None,
                 batch_size=None) -> dict:
    """The form's WD14 fields as ``WD14Options`` changes (empty ones are left out)."""
    changes: dict = {}
    if character_threshold not in (None, ""):
        changes["character_threshold"] = float(character_threshold)
    if include_rating is not None:
        changes["include_rating"] = bool(include_rating)
    if character_tags_first is not None:
        changes["character_tags_first"] = bool(character_tags_first)
    if batch_size not in (None, ""):
        changes["batch_size"] = int(batch_size)
    return changes


def _tagger(services, name: str, threshold) -> Tagger:
    for tagger in available_taggers(services):
        if tagger.name == name:
            return tagger if threshold in (None, "") else tagger.with_threshold(float(threshold))
    raise TaggerUnavailable(f"no tagger called {name!r}; press refresh to list the taggers")
