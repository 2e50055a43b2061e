"""HTML reports of dataset operations: what went in, what was refused and why, duplicate groups.

Every name comes from the user's files, so all text is escaped. Long lists are cut after
``MAX_LISTED`` entries with a count of the rest.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable, Sequence

from .gallery_flags import factor_text

MAX_LISTED = 200


def _items(lines: Sequence[str]) -> str:
    shown = [f"<li>{html.escape(line)}</li>" for line in lines[:MAX_LISTED]]
    if len(lines) > MAX_LISTED:
        shown.append(f"<li>… and {len(lines) - MAX_LISTED} more</li>")
    return "<ul>" + "".join(shown) + "</ul>"


def section(title: str, lines: Sequence[str], css: str) -> str:
    """A titled list (empty string when there is nothing to list)."""
    if not lines:
        return ""
    return f'<div class="tt-report-{css}"><b>{html.escape(title)} ({len(lines)})</b>{_items(list(lines))}</div>'


def refusal_lines(refusals: Iterable) -> list[str]:
    return [f"{r.name}: {r.reason}" for r in refusals]


def upload_report(result) -> str:
    """Accepted, renamed, skipped and refused files of a ``datasets.upload.UploadResult``."""
    parts = [
        section("Accepted", list(result.added), "accepted"),
        section("Renamed", [f"{old} → {new}" for old, new in result.renamed], "info"),
        section("Small (kept; training enlarges them)", refusal_lines(result.small), "info"),
        section("Skipped", refusal_lines(result.skipped), "info"),
        section("Refused", refusal_lines(result.refused), "refused"),
    ]
    if result.replaced_to is not None:
        parts.insert(0, f"<p>The previous images were set aside in {html.escape(str(result.replaced_to))}.</p>")
    return wrap("Upload", parts)


def preprocess_report(result) -> str:
    """Outputs, images smaller than the target, and refusals of a ``PreprocessResult``."""
    small = [f"{name}: {w}×{h}, smaller than the target size" for name, w, h in result.small]
    parts = [
        f"<p>{len(result.outputs)} training images in {html.escape(result.folder.name)} "
        f"(repeats {result.repeats}).</p>",
        section("Accepted", list(result.outputs), "accepted"),
        section("Small (kept, but they will look soft)", small, "info"),
        section("Refused", refusal_lines(result.refused), "refused"),
    ]
    return wrap("Preprocessing", parts)


def autotag_report(result, tagger_name: str) -> str:
    parts = [
        f"<p>{html.escape(tagger_name)} tagged {result.tagged} image(s).</p>",
        section("Failed", refusal_lines(result.failed), "refused"),
    ]
    return wrap("Auto-tagging", parts)


def duplicates_report(report) -> str:
    """Groups of identical files and of near-identical images."""
    exact = [", ".join(group) for group in report.exact]
    near = [", ".join(group) for group in report.near]
    if not exact and not near and not report.unreadable:
        return wrap("Duplicates", ["<p>No duplicates found.</p>"])
    parts = [
        section("Identical files", exact, "refused"),
        section("Near duplicates (resized, re-saved or recoloured copies)", near, "info"),
        section("Unreadable", list(report.unreadable), "refused"),
    ]
    return wrap("Duplicates", parts)


def dropped_small_report(small: Sequence, target: Path | None, origin: Path | None = None) -> str:
    """What "Drop small images" set aside (``datasets.small_images.SmallImage`` entries) and where to."""
    if not small or target is None:
        return wrap("Drop small images", ["<p>No small images: nothing was dropped.</p>"])
    back = f" (move them back into {html.escape(str(origin))} to use them again)" if origin is not None else ""
    parts = [
        section("Dropped", [f"{s.name}: {s.width}x{s.height}, training would enlarge it {factor_text(s.factor)}x"
                            for s in small], "info"),
        (f"<p>Moved with their captions to {html.escape(str(target))}, not deleted{back}. "
         "Press Preprocess to update the training images.</p>"),
    ]
    return wrap("Drop small images", parts)


def wrap(title: str, parts: Iterable[str]) -> str:
    body = "".join(p for p in parts if p)
    return f'<div class="tt-report"><h4>{html.escape(title)}</h4>{body}</div>'
