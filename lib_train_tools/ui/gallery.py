"""The Dataset tab's gallery: processed images with their captions, or the uploads before that.

Also the per-image picker and caption shown beside it. Plain functions (no gradio); the gallery
value is a list of ``(path, label)`` pairs, which both gradio versions display: the label is the
caption (after "⚠ 160 tokens, only 75 trained — " when it is too long) or, without a caption,
what the image is trained as. The note above the gallery lists the flags (``gallery_flags``):
small images, over-long captions, images without a caption.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from ..datasets.captions import CAPTION_EXTENSIONS, read_caption_file
from ..datasets.origin_files import list_origin
from ..datasets.tag_curation import current_captions
from ..datasets.tag_journal import CurationError
from ..projects.layout import VersionPaths
from ..train.mask_names import is_mask_file
from .gallery_flags import gallery_flags, item_label, summary_html
from .replies import choices

GALLERY_LIMIT = 300
_NOT_IMAGES = CAPTION_EXTENSIONS + (".npz", ".json")


@dataclass(frozen=True)
class GalleryItem:
    stem: str
    path: Path
    caption: str


def gallery_items(version: VersionPaths) -> tuple[list[GalleryItem], bool]:
    """The processed images with their captions, or the uploaded ones before preprocessing."""
    folder = version.processed_dir()
    if folder is not None:
        captions = captions_or_files(version, folder)
        images = sorted((p for p in folder.iterdir() if _is_image(p)), key=lambda p: p.stem)
        return [GalleryItem(p.stem, p, captions.get(p.stem, "")) for p in images], True
    items = []
    for item in list_origin(version):
        try:
            caption = item.read_caption() or ""
        except ValueError:
            caption = ""
        items.append(GalleryItem(item.stem, item.image, caption))
    return items, False


def _is_image(path: Path) -> bool:
    return (path.is_file() and not path.name.startswith(".") and path.suffix.lower() not in _NOT_IMAGES
            and not is_mask_file(path))  # a loss mask belongs to its image


def gallery_values(version: VersionPaths | None, chosen: str | None = None) -> tuple:
    """(gallery, note, image picker, caption of the chosen image)."""
    if version is None:
        return [], "<p>Choose or create a project and a version.</p>", choices([], None), ""
    items, processed = gallery_items(version)
    shown = items[:GALLERY_LIMIT]
    flags = gallery_flags(version, [i.stem for i in items], {i.stem: i.caption for i in items}, processed)
    gallery = [(str(i.path), item_label(i.stem, i.caption, flags)) for i in shown]
    if processed:
        note = f"{len(items)} training image(s), repeats {version.processed_repeats()}"
        pending = len(list_origin(version))
        note += f"; {pending} uploaded image(s) in all (Preprocess again after changing the upload)"
    elif items:
        note = f"{len(items)} uploaded image(s), not preprocessed yet: press Preprocess"
    else:
        note = "No images yet: drop image files or zip archives on the upload box"
    if len(items) > len(shown):
        note += f"; showing the first {len(shown)}"
    stems = [i.stem for i in items] if processed else []
    pick = chosen if chosen in stems else (stems[0] if stems else None)
    caption = next((i.caption for i in items if i.stem == pick), "")
    return gallery, f"<p>{html.escape(note)}</p>" + summary_html(flags), choices(stems, pick), caption


def processed_image_count(version: VersionPaths) -> int:
    """How many images the trainer will read from the version's processed folder."""
    folder = version.processed_dir()
    return 0 if folder is None else sum(1 for p in folder.iterdir() if _is_image(p))


def captions_or_files(version: VersionPaths, folder: Path) -> dict[str, str]:
    """Captions as curation makes them; the caption files themselves for hand-made folders."""
    try:
        return current_captions(version)
    except CurationError:
        return {p.stem: read_caption_file(p) for p in folder.glob("*.txt")}
