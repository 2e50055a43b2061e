"""What the gallery flags: small uploads, over-long captions, images without a caption.

Small images (``datasets.small_images``, by uploaded file) are listed in the note above the
gallery, next to "Drop small images"; their gallery captions stay the captions themselves. An
over-long caption (``datasets.caption_tokens``, counted as the trainer counts) is flagged in its
image's gallery caption and in the note. An image without a caption shows what it is trained as:
its folder's class tokens (``train/data/folders.py``: the processed folder's name after
``<repeats>_``) with the version's caption prefix and suffix. Plain functions (no gradio).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field

from ..datasets.caption_tokens import CaptionLength, long_caption_advice, long_captions, trained_caption
from ..datasets.small_images import SmallImage, small_images, version_resolution
from ..projects.layout import VersionPaths

MAX_NAMED = 8  # names listed per summary line before "and N more"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GalleryFlags:
    """The flags of one version's gallery; ``by_item`` holds each flagged gallery stem's short texts."""

    small: tuple[SmallImage, ...] = ()
    long: tuple[CaptionLength, ...] = ()
    uncaptioned: tuple[str, ...] = ()  # processed stems without a caption
    trained_as: str = ""  # what those are trained with
    resolution: tuple[int, int] = (512, 512)
    problems: tuple[str, ...] = ()  # checks that could not run, and why
    by_item: dict[str, tuple[str, ...]] = field(default_factory=dict)


def gallery_flags(version: VersionPaths, stems: list[str], captions: dict[str, str],
                  processed: bool) -> GalleryFlags:
    """Flags of the gallery's images (``stems``, with their ``captions``; processed or uploaded)."""
    resolution = version_resolution(version)
    small = tuple(small_images(version, resolution))
    long: tuple[CaptionLength, ...] = ()
    uncaptioned: tuple[str, ...] = ()
    trained_as, problems = "", []
    if processed:
        try:
            long = tuple(c for c in long_captions(version) if c.image in captions)
        except (ImportError, OSError, RuntimeError, ValueError) as exc:  # e.g. no open_clip tokenizer
            _log.warning("caption lengths not checked: %s", exc)
            problems.append(f"caption lengths not checked: {exc}")
        uncaptioned = tuple(stem for stem in stems if not captions.get(stem, "").strip())
        if uncaptioned:
            trained_as = _empty_caption_text(version, problems)
    by_item: dict[str, tuple[str, ...]] = {c.image: (f"{c.tokens} tokens, only {c.limit} trained",) for c in long}
    return GalleryFlags(small, long, uncaptioned, trained_as, resolution, tuple(problems), by_item)


def item_label(stem: str, caption: str, flags: GalleryFlags) -> str:
    """The gallery caption of one image: its flags first ("⚠ 160 tokens, only 75 trained — ..."), then
    its caption, or what it is trained as when it has none."""
    text = caption
    if stem in flags.uncaptioned:
        text = f"(no caption: trained as '{flags.trained_as}')"
    marks = flags.by_item.get(stem)
    return f"⚠ {'; '.join(marks)} — {text}" if marks else text


def summary_lines(flags: GalleryFlags) -> list[str]:
    """One line per kind of flag, for the note above the gallery (plain text)."""
    lines = []
    if flags.small:
        n = len(flags.small)
        names = [f"{s.name} {s.width}x{s.height} {factor_text(s.factor)}x" for s in flags.small]
        width, height = flags.resolution
        lines.append(f"{_count(n, 'small image')} (training at {width}x{height} enlarges {_them(n)}: expect blur): "
                     f"{_named(names)}; Drop small images sets {_them(n)} aside")
    if flags.long:
        n = len(flags.long)
        names = [f"{c.image} {c.tokens} tokens" for c in flags.long]
        lines.append(f"{_count(n, 'caption')} over the token window (only the first {flags.long[0].limit} tokens "
                     f"are trained): {_named(names)}; {long_caption_advice(list(flags.long))}")
    if flags.uncaptioned:
        n = len(flags.uncaptioned)
        lines.append(f"{_count(n, 'image')} without a caption, trained as '{flags.trained_as}': "
                     f"{_named(list(flags.uncaptioned))}")
    return lines + list(flags.problems)


def summary_html(flags: GalleryFlags) -> str:
    """The summary lines as HTML paragraphs (names come from the user's files: escaped)."""
    return "".join(f'<p class="tt-gallery-flag">⚠ {html.escape(line)}</p>' for line in summary_lines(flags))


def factor_text(factor: float) -> str:
    """How ``datasets.image_checks.upscale_note`` writes a factor: 64, 5.1, 2."""
    return f"{factor:.0f}" if factor >= 10 else f"{factor:.1f}".rstrip("0").rstrip(".")


def class_tokens(version: VersionPaths) -> str:
    """The trainer's class tokens of the processed folder (its name after ``<repeats>_``), else ""."""
    folder = version.processed_dir()
    return folder.name.partition("_")[2] if folder is not None else ""


def _empty_caption_text(version: VersionPaths, problems: list[str]) -> str:
    tokens = class_tokens(version)
    try:
        return trained_caption(version, tokens)
    except (ImportError, OSError, RuntimeError, ValueError) as exc:
        problems.append(f"caption prefix and suffix not applied: {exc}")
        return tokens


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _them(n: int) -> str:
    return "it" if n == 1 else "them"


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
