"""The file name of a loss mask: ``<stem>.mask.png`` beside its image (``cat.png`` -> ``cat.mask.png``).

The rule lives here, apart from ``data/masks.py`` (which needs torch), so that dataset preparation,
the Dataset tab's gallery and the listing of uploaded images can tell a mask from a training image
without loading the training stack. ``data/masks.py`` re-exports these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

MASK_SUFFIX = ".mask.png"


def mask_path_for(image_path: Path) -> Path:
    """The mask file that belongs to ``image_path``: ``<stem>.mask.png`` in the same folder."""
    return image_path.with_name(image_path.stem + MASK_SUFFIX)


def is_mask_file(path: Path) -> bool:
    """True for ``*.mask.png`` files, which are masks and never training images themselves."""
    return path.name.lower().endswith(MASK_SUFFIX)


def mask_owner_stem(path: Path) -> Optional[str]:
    """The stem of the image a mask file belongs to (``cat.mask.png`` -> ``cat``); None for other files."""
    return path.name[: -len(MASK_SUFFIX)] if is_mask_file(path) else None
