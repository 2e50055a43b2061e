"""Very small images of a version, for the settings check and the gallery: kept, but flagged.

Training scales every image to about the training resolution's area, so an 8x8 picture is
enlarged 64 times and comes out as blur. Such images are never refused; this lists them with the
factor (for the version's ``resolution`` setting, else 512x512) so the user can drop them
(``origin_files.drop_images`` takes the stems listed here).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from ..projects.layout import VersionPaths
from ..projects.settings import SettingsError, load_settings
from .image_checks import training_resolution, upscale_factor, upscale_note
from .origin_files import list_origin

RESOLUTION_KEY = "resolution"
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class SmallImage:
    stem: str  # origin stem: what ``drop_images`` takes
    name: str  # the uploaded file's name
    width: int
    height: int
    factor: float
    note: str  # "8x8: will be upscaled 64x for training at 512x512, expect blur; drop it unless you need it"


def version_resolution(version: VersionPaths) -> tuple[int, int]:
    """The version's training resolution setting as (width, height), else (also when unreadable) 512x512."""
    try:
        return training_resolution(load_settings(version).get(RESOLUTION_KEY))
    except (SettingsError, OSError):
        return training_resolution(None)


def small_images(version: VersionPaths, resolution: tuple[int, int] | None = None) -> list[SmallImage]:
    """Uploaded images that training enlarges at least 2x, most enlarged first; unreadable ones are skipped."""
    target = resolution or version_resolution(version)
    found = []
    for item in list_origin(version):
        try:
            with Image.open(item.image) as image:
                width, height = image.size
                if image.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                    width, height = height, width
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            continue
        note = upscale_note(width, height, target)
        if note:
            found.append(SmallImage(item.stem, item.image.name, width, height,
                                    upscale_factor(width, height, target), note))
    return sorted(found, key=lambda s: (-s.factor, s.stem))
