"""Handlers of the Dataset tab's "Loss masks" accordion: import masks, and see one over its image.

Plain functions (no gradio). Outputs, in this order wherever they appear together: ``VIEW`` (the
image chosen in the gallery with its mask over it, a PIL image, or None), its ``NOTE`` (where the
mask came from, how much of the picture trains), ``SUMMARY`` ("n of m images have a mask (k from
alpha)", over the uploaded images) and ``REPORT`` (the last import's lists). The view tints red
where the mask is 0 (ignored), in proportion for grey, and leaves white (trained) parts as they are.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable, Optional, Sequence, cast

import numpy as np
from PIL import Image, ImageOps

from ..datasets.mask_files import MaskImportResult, import_masks, mask_counts
from ..train.color_modes import to_rgb
from ..train.data.masks import alpha_channel, find_mask
from ..train.mask_names import mask_path_for
from . import dataset_report as report
from .gallery import gallery_items
from .replies import NO_CHANGE, Notice, Reply, ok, warning
from .selection import parse_selection, require_version

ProgressFn = Callable[[int, int, str], None]
VIEW_SIDE = 768  # the view's longest side in pixels (bigger images are shown reduced)
TINT = (255, 0, 0)
TINT_STRENGTH = 0.6  # share of the tint colour where the mask is 0
WHITE = (255, 255, 255)


def mask_view(services, selection: str | None) -> Reply:
    """On a change of version: no image chosen yet, and the counts (VIEW, NOTE, SUMMARY)."""
    version = require_version(services, selection) if parse_selection(selection) else None
    summary = summary_html(version) if version is not None else ""
    return Reply(None, (None, "<p>Click an image in the gallery to see its mask.</p>", summary))


def refresh_summary(services, selection: str) -> Reply:
    """The counts again (SUMMARY), e.g. after an upload or preprocessing."""
    return Reply(None, (summary_html(require_version(services, selection)),))


def import_mask_files(services, selection: str, paths: Sequence[str], replace: bool,
                      progress: ProgressFn | None = None) -> Reply:
    """Store uploaded masks beside their images (``datasets.mask_files``); REPORT and SUMMARY."""
    version = require_version(services, selection)
    if not paths:
        return Reply(ok("no files were given"), (NO_CHANGE, NO_CHANGE))
    result = import_masks(version, list(paths), replace=bool(replace), progress=progress)
    services.store.touch(version)
    return Reply(import_notice(result, version.processed_dir() is not None),
                 (import_report(result), summary_html(version)))


def import_notice(result: MaskImportResult, processed: bool) -> Notice:
    """What the import changed in a sentence: stored, resized, unmatched and refused masks."""
    parts = [f"{len(result.added)} mask(s) stored"]
    if result.replaced:
        parts.append(f"{len(result.replaced)} replaced")
    if result.resized:
        parts.append(f"{len(result.resized)} resized to their image")
    parts.append(f"{len(result.unmatched)} unmatched, {len(result.refused)} refused, {len(result.skipped)} skipped")
    text = ", ".join(parts)
    if result.added and processed:
        text += "; press Preprocess to carry them to the training images"
    return (warning if result.unmatched or result.refused or not result.added else ok)(text)


def import_report(result: MaskImportResult) -> str:
    """The import's lists as HTML (names escaped by ``dataset_report``)."""
    parts = [
        report.section("Stored", [f"{incoming} → {stored}" for incoming, stored in result.added], "accepted"),
        report.section("Replaced, the old masks set aside", list(result.replaced), "info"),
        report.section("Resized to their image", report.refusal_lines(result.resized), "info"),
        report.section("Unmatched, no uploaded image of that name", list(result.unmatched), "refused"),
        report.section("Skipped", report.refusal_lines(result.skipped), "info"),
        report.section("Refused", report.refusal_lines(result.refused), "refused"),
    ]
    if result.replaced_to is not None:
        parts.insert(0, f"<p>The replaced masks are in {html.escape(str(result.replaced_to))}.</p>")
    return report.wrap("Mask import", parts)


def summary_html(version) -> str:
    """SUMMARY: the counts over the uploaded images, and over the training images once preprocessed."""
    text = mask_counts(version).text()
    folder = version.processed_dir()
    if folder is not None:
        items = gallery_items(version)[0]
        masked = sum(1 for item in items if mask_path_for(item.path).is_file())
        text += f"; {masked} of {len(items)} training images carry one"
    return f"<p>{html.escape(text)}</p>"


def show_mask(services, selection: str, index, _value=None) -> Reply:
    """A click on a gallery image shows it with its mask over it (VIEW, NOTE)."""
    version = require_version(services, selection)
    items = gallery_items(version)[0]
    if not isinstance(index, int) or not 0 <= index < len(items):
        return Reply(None, (NO_CHANGE, NO_CHANGE))
    path = items[index].path
    image, mask, source = load_with_mask(path)
    note = f"{path.name}: {source}"
    if mask is not None:
        share = float(np.asarray(mask, dtype=np.float32).mean()) / 255.0
        note += f"; {share:.0%} of the picture trains (weighted)"
    else:
        note += "; it trains everywhere"
    return Reply(None, (overlay(image, mask), f"<p>{html.escape(note)}</p>"))


def load_with_mask(path: Path) -> tuple[Image.Image, Optional[Image.Image], str]:
    """The upright RGB image (on white), its mask (``masks.find_mask``) and where the mask came from."""
    with Image.open(path) as opened:
        upright = cast(Image.Image, ImageOps.exif_transpose(opened))
        upright.load()
    mask = find_mask(path, upright)
    if mask is None:
        source = "no mask"
    elif alpha_channel(upright) is not None:
        source = "mask from its alpha channel"
    else:
        source = f"mask from {mask_path_for(path).name}"
    return to_rgb(upright, WHITE), mask, source


def overlay(image: Image.Image, mask: Optional[Image.Image], side: int = VIEW_SIDE) -> Image.Image:
    """``image`` (reduced to ``side``) tinted red where ``mask`` is 0, in proportion where it is grey."""
    shown = image.convert("RGB")
    if max(shown.size) > side:
        shown = shown.copy()
        shown.thumbnail((side, side), Image.Resampling.LANCZOS)
    if mask is None:
        return shown
    weight = np.asarray(mask.convert("L").resize(shown.size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    pixels = np.asarray(shown, dtype=np.float32)
    tinted = pixels * (1.0 - TINT_STRENGTH) + np.array(TINT, dtype=np.float32) * TINT_STRENGTH
    blended = pixels * weight[..., None] + tinted * (1.0 - weight[..., None])
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8), "RGB")
