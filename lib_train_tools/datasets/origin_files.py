"""The user's files in ``dataset/origin/``: image + caption pairs by stem, and dropping chosen ones.

Upload guarantees one image per stem; a caption is the same-stem ``.txt`` (preferred) or
``.caption`` file; a ``<stem>.mask.png`` is that image's loss mask (``datasets/mask_files.py``), not
an image. Dropping (after the duplicate report, say) is the only change ever made to
``origin/`` besides uploads (and mask imports), and even it only moves files to ``dataset/dropped/<time>/``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..projects.layout import VersionPaths
from ..train.mask_names import is_mask_file, mask_owner_stem
from .captions import CAPTION_EXTENSIONS, read_caption_file

_UNSAFE_CHARS = re.compile(r'[<>:"|?*\\/\x00-\x1f\x7f]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[1-9]|lpt[1-9])$", re.IGNORECASE)
MAX_STEM_CHARS = 150
MAX_STEM_BYTES = 200


@dataclass(frozen=True)
class OriginItem:
    stem: str
    image: Path
    caption: Path | None

    def read_caption(self) -> str | None:
        return read_caption_file(self.caption) if self.caption else None


def list_origin(version: VersionPaths) -> list[OriginItem]:
    """Images in ``origin/`` sorted by stem, each with its caption file if any."""
    if not version.origin.is_dir():
        return []
    files = [p for p in version.origin.iterdir() if p.is_file() and not p.name.startswith(".")]
    captions: dict[str, Path] = {}
    for ext in reversed(CAPTION_EXTENSIONS):  # the first extension wins
        captions.update({p.stem: p for p in files if p.suffix.lower() == ext})
    images = [p for p in files if p.suffix.lower() not in CAPTION_EXTENSIONS and not is_mask_file(p)]
    return sorted((OriginItem(p.stem, p, captions.get(p.stem)) for p in images), key=lambda i: i.stem)


def safe_file_stem(stem: str) -> str:
    """A stem that is a valid file name everywhere (unsafe characters become '_').

    At most ``MAX_STEM_CHARS`` characters and ``MAX_STEM_BYTES`` bytes in UTF-8, so that the stem
    with a ``" (2)"``, ``-part3-flip`` and an extension still fits the 255-byte name limit (a zip
    entry's name can be any length).
    """
    cleaned = _UNSAFE_CHARS.sub("_", stem).strip().rstrip(".")
    if not cleaned or cleaned.startswith("."):
        cleaned = "_" + cleaned
    if _RESERVED.match(cleaned):
        cleaned = "_" + cleaned
    cut = cleaned[:MAX_STEM_CHARS].encode("utf-8")[:MAX_STEM_BYTES].decode("utf-8", "ignore")
    return cut if cut == cleaned else (cut.rstrip(" .") or "_")


def drop_images(version: VersionPaths, stems: Iterable[str]) -> Path:
    """Move the chosen images, their captions and masks out of ``origin/``; returns the folder they went to."""
    wanted = set(stems)
    items = {i.stem: i for i in list_origin(version)}
    missing = sorted(wanted - set(items))
    if missing:
        raise FileNotFoundError(f"not in the dataset of {version.name!r}: {', '.join(missing)}")
    target = version.dataset / "dropped" / time.strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    with version.lock():
        for path in sorted(version.origin.iterdir()):
            if path.is_file() and (path.stem in wanted or mask_owner_stem(path) in wanted):
                os.replace(path, target / path.name)
    return target
