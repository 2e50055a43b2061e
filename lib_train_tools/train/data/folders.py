"""Scan kohya-style dataset folders into :class:`ImageItem` records.

Layout: the training directory is a *parent*; each subfolder is named ``<repeats>_<name>``
(``10_sks dog``): repeats is the integer before the first underscore, the rest (underscores kept)
is the class-token text used as the caption of any image that has no caption file, or whose
caption file holds no text (the same rule as preprocessing, which writes no file for an empty
caption; such images are counted in one warning, see ``caption_checks``). Images sit directly in
the subfolder (no recursion); a caption is the same-named file with one of the caption extensions
(first existing one wins), first non-blank line only. A regularisation directory has the same
layout and yields items with ``is_reg=True``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image

from .errors import DataError
from .masks import is_mask_file

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_CAPTION_EXTENSIONS = (".txt", ".caption")
FOLDER_NAME_HINT = "`10_mychar` (<repeats>_<name>)"
EXIF_ORIENTATION_TAG = 0x0112
# EXIF orientations 5-8 rotate by 90 degrees, so the displayed image has width and height swapped.
EXIF_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageItem:
    """One image of the dataset, before repeats are expanded.

    ``size`` is (width, height) as displayed, i.e. after the EXIF orientation is applied.
    ``caption`` is the raw caption (file text, else the folder's class tokens, else "");
    ``empty_caption_file`` says the caption file exists but holds no text.
    """

    path: Path
    caption: str
    caption_file: Optional[Path]
    repeats: int
    is_reg: bool
    class_tokens: str
    folder: str
    size: tuple[int, int]
    empty_caption_file: bool = False


def parse_folder_name(folder: Path) -> tuple[int, str]:
    """Split ``<repeats>_<class tokens>`` into (repeats, class tokens); raise DataError otherwise."""
    name = folder.name
    head, sep, tail = name.partition("_")
    if not sep or not head.isdigit():
        raise DataError(f"dataset folder '{folder}' must be named like {FOLDER_NAME_HINT}")
    repeats = int(head)
    if repeats < 1:
        raise DataError(f"dataset folder '{folder}' has {repeats} repeats; the number before '_' must be at least 1")
    return repeats, tail


def normalise_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    """Add the missing leading dot (kohya accepts ``txt`` for ``.txt``) and lower-case nothing."""
    return tuple(ext if ext.startswith(".") else "." + ext for ext in extensions)


def read_caption(image_path: Path, caption_extensions: Sequence[str]) -> tuple[Optional[str], Optional[Path]]:
    """(first non-blank line of the caption file, its path); ("", path) when the file holds no text;
    (None, None) when there is no caption file."""
    for ext in normalise_extensions(caption_extensions):
        candidate = image_path.with_suffix(ext)
        if candidate.is_file():
            return _first_line(candidate), candidate
    return None, None


def _first_line(caption_path: Path) -> str:
    try:
        text = caption_path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"caption file '{caption_path}' is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DataError(f"cannot read caption file '{caption_path}': {exc}") from exc
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def read_image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, reading only the header; DataError if unreadable."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image '{path}': {exc}") from exc
    if orientation in EXIF_SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name for a stable order; ``*.mask.png``
    loss masks (``masks.py``) belong to their image and are not listed."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not is_mask_file(p))


def scan_folder(folder: Path, is_reg: bool, caption_extensions: Sequence[str]) -> list[ImageItem]:
    """Read one ``<repeats>_<name>`` folder into items (captions and image sizes included)."""
    repeats, class_tokens = parse_folder_name(folder)
    items = []
    for image_path in list_images(folder):
        caption, caption_file = read_caption(image_path, caption_extensions)
        items.append(
            ImageItem(
                path=image_path,
                caption=caption or class_tokens,
                caption_file=caption_file,
                repeats=repeats,
                is_reg=is_reg,
                class_tokens=class_tokens,
                folder=folder.name,
                size=read_image_size(image_path),
                empty_caption_file=caption_file is not None and not caption,
            )
        )
    if not items:
        _log.warning("dataset folder '%s' contains no images (%s); skipped", folder, ", ".join(IMAGE_EXTENSIONS))
    return items


def scan_root(root: Path, is_reg: bool, caption_extensions: Sequence[str]) -> list[ImageItem]:
    """Scan every subfolder of a train or reg directory; images directly in ``root`` are an error."""
    kind = "regularisation" if is_reg else "training"
    if not root.is_dir():
        raise DataError(f"{kind} directory '{root}' does not exist or is not a folder")
    loose = list_images(root)
    if loose:
        raise DataError(
            f"{kind} directory '{root}' holds images directly (e.g. '{loose[0].name}'); put them in a subfolder "
            f"named like {FOLDER_NAME_HINT}"
        )
    items: list[ImageItem] = []
    # Hidden folders (.git, .ipynb_checkpoints) are tool debris, not subsets.
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        items.extend(scan_folder(folder, is_reg, caption_extensions))
    return items


def scan_dataset(
    train_dir: Path,
    reg_dir: Optional[Path] = None,
    caption_extensions: Sequence[str] = DEFAULT_CAPTION_EXTENSIONS,
) -> list[ImageItem]:
    """All training items followed by all regularisation items; DataError when there is nothing to train on."""
    train_items = scan_root(Path(train_dir), False, caption_extensions)
    if not train_items:
        raise DataError(
            f"no training images found in '{train_dir}': add images ({', '.join(IMAGE_EXTENSIONS)}) to subfolders "
            f"named like {FOLDER_NAME_HINT}"
        )
    reg_items: list[ImageItem] = []
    if reg_dir is not None:
        reg_items = scan_root(Path(reg_dir), True, caption_extensions)
        if not reg_items:
            _log.warning("regularisation directory '%s' contains no images; training without them", reg_dir)
    return train_items + reg_items
