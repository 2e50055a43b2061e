"""Preprocessing ``origin/`` into ``processed/<repeats>_<project>/``: what the trainer reads.

Re-runnable at any time: ``origin/`` is only read. The new folder is built beside the old one and
swapped in when complete, so a failure leaves the previous result intact. Per image: EXIF
orientation, first frame, transparency flattened onto ``background``, then either shrink to the
target area keeping the aspect ratio (the trainer's buckets do the rest) or scale-and-crop to
exactly W x H (centre or the content's focal point). Very long images may first be split into
overlapping pieces; flipped copies are optional. Images smaller than the target are flagged.

Loss masks: an image's mask (``train.data.masks.find_mask``: its alpha channel, else the
``<stem>.mask.png`` beside it in ``origin/``) goes through the very same split, resize, crop and flip
and is written as ``<output stem>.mask.png`` beside each output (``cat-part2-flip.png`` ->
``cat-part2-flip.mask.png``), where the trainer's ``masked_loss`` reads it; the alpha itself is
flattened away with the transparency. Mask pixels are resized with the image's filter (Lanczos), a
mask's size must equal its image's (else the image is refused with the reason), and an image with a
mask is decoded at full size (no reduced JPEG decoding), so both have the same geometry.

Captions: the base caption of each output is the origin caption merged with generated tags
(``caption_policy``); the curation journal is then replayed on top (see ``tag_journal``), so
curated captions survive a re-run. An image left without caption text gets no caption file, so
the trainer captions it with the folder's name (the project), as the README promises.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image, ImageOps

from ..atomic import atomic_path, atomic_write_json, read_json
from ..projects.layout import VersionPaths
from ..train.color_modes import ALPHA_MODES
from ..train.data.masks import find_mask
from ..train.mask_names import MASK_SUFFIX, mask_path_for
from .captions import CAPTION_POLICIES, CaptionError, format_tags, merge_captions
from .image_ops import cover_box, cover_scale, fit_area, load_upright, split_pieces
from .origin_files import OriginItem, list_origin
from .repeats import original_tab_repeats
from .safe_zip import Refusal
from .tag_curation import render_captions_unlocked

ProgressFn = Callable[[int, int, str], None]
RESIZE_MODES = ("keep_aspect", "crop")
CROP_ANCHORS = ("center", "focal")
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg"}


@dataclass(frozen=True)
class PreprocessOptions:
    width: int = 512
    height: int = 512
    mode: str = "keep_aspect"
    crop_anchor: str = "center"
    background: tuple[int, int, int] = (255, 255, 255)
    split_ratio: float | None = None  # split when long side / short side reaches this (e.g. 2.0)
    split_overlap: float = 0.2
    flip_copies: bool = False
    caption_policy: str = "keep"
    repeats: int | None = None  # None: from the image count every time, 512 / images (>= 4)
    output_format: str = "png"

    def __post_init__(self) -> None:
        problems = []
        if self.width < 8 or self.height < 8:
            problems.append(f"target size {self.width}x{self.height} is below 8 pixels")
        if self.mode not in RESIZE_MODES:
            problems.append(f"mode {self.mode!r} is not one of {RESIZE_MODES}")
        if self.crop_anchor not in CROP_ANCHORS:
            problems.append(f"crop_anchor {self.crop_anchor!r} is not one of {CROP_ANCHORS}")
        if self.split_ratio is not None and self.split_ratio <= 1.0:
            problems.append(f"split_ratio {self.split_ratio} must be above 1")
        if not 0.0 <= self.split_overlap < 0.9:
            problems.append(f"split_overlap {self.split_overlap} must be in [0, 0.9)")
        if self.caption_policy not in CAPTION_POLICIES:
            problems.append(f"caption_policy {self.caption_policy!r} is not one of {CAPTION_POLICIES}")
        if self.repeats is not None and self.repeats < 1:
            problems.append(f"repeats {self.repeats} must be at least 1")
        if self.output_format not in OUTPUT_FORMATS:
            problems.append(f"output_format {self.output_format!r} is not one of {tuple(OUTPUT_FORMATS)}")
        if problems:
            raise ValueError("preprocess options: " + "; ".join(problems))


@dataclass(frozen=True)
class PreprocessResult:
    folder: Path
    repeats: int
    outputs: tuple[str, ...]
    small: tuple[tuple[str, int, int], ...]  # (origin file, width, height) below the target
    refused: tuple[Refusal, ...]


def preprocess(
    version: VersionPaths, options: PreprocessOptions = PreprocessOptions(), progress: ProgressFn | None = None
) -> PreprocessResult:
    """Rebuild ``processed/`` from ``origin/``; returns outputs, flagged small images and refusals."""
    with version.lock():
        items = list_origin(version)
        # repeats the user did not set follow the image count of THIS run: an earlier run's automatic
        # value (say 512 from a run with no images yet) would otherwise stick
        repeats = options.repeats or original_tab_repeats(max(1, len(items)))
        generated = read_json(version.generated_tags_file, default={}) or {}
        build = version.processed_parent / f".build-{uuid.uuid4().hex[:8]}"
        build.mkdir(parents=True)
        try:
            outputs, small, refused, base = [], [], [], {}
            for done, item in enumerate(items, start=1):
                try:
                    written, size = _process_one(item, options, build)
                except (OSError, ValueError, Image.DecompressionBombError) as exc:
                    refused.append(Refusal(item.image.name, f"cannot be processed ({exc})"))
                    written, size = [], (0, 0)
                caption = _base_caption(item, generated.get(item.stem, []), options.caption_policy)
                base.update({Path(name).stem: caption for name in written})
                outputs += written
                if written and _is_small(size, options):
                    small.append((item.image.name, size[0], size[1]))
                if progress:
                    progress(done, len(items), item.image.name)
            folder = _swap_in(version, build, repeats)
            atomic_write_json(version.base_captions_file, base)
            render_captions_unlocked(version)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return PreprocessResult(folder, repeats, tuple(outputs), tuple(small), tuple(refused))


def _process_one(item: OriginItem, options: PreprocessOptions, folder: Path) -> tuple[list[str], tuple[int, int]]:
    with Image.open(item.image) as probe:
        size = _upright_size(probe)
    splits = options.split_ratio is not None and max(size) / min(size) >= options.split_ratio
    mask = _origin_mask(item.image)
    hint = 1.0 if splits or mask is not None else _scale_needed(size, options)
    image = load_upright(item.image, options.background, hint)
    aspect = options.width / options.height
    pieces = split_pieces(image, aspect, options.split_overlap) if splits else [image]
    masks: list[Image.Image | None] = [None] * len(pieces)
    if mask is not None:  # the split depends on the size only: the mask's pieces match the image's
        masks = list(split_pieces(mask, aspect, options.split_overlap)) if splits else [mask]
    names = []
    for index, (piece, mask_piece) in enumerate(zip(pieces, masks), start=1):
        stem = item.stem if len(pieces) == 1 else f"{item.stem}-part{index}"
        result, mask_result = _fit(piece, mask_piece, options)
        names.append(_save(result, folder, stem, options.output_format))
        _save_mask(mask_result, folder, stem)
        if options.flip_copies:
            names.append(_save(ImageOps.mirror(result), folder, f"{stem}-flip", options.output_format))
            _save_mask(None if mask_result is None else ImageOps.mirror(mask_result), folder, f"{stem}-flip")
    return names, size


def _origin_mask(path: Path) -> Image.Image | None:
    """The upright loss mask of an uploaded image (``find_mask``), or None. The image is decoded
    only when it may have an alpha channel or a ``.mask.png`` is beside it."""
    with Image.open(path) as probe:
        if probe.mode not in ALPHA_MODES and "transparency" not in probe.info and not mask_path_for(path).is_file():
            return None
        upright = ImageOps.exif_transpose(probe)
        return find_mask(path, upright) if upright is not None else None


def _fit(piece: Image.Image, mask: Image.Image | None, options: PreprocessOptions
         ) -> tuple[Image.Image, Image.Image | None]:
    """The piece resized (and cropped) to the target, and its mask with the very same geometry."""
    w, h = options.width, options.height
    if options.mode == "crop":
        scaled = cover_scale(piece, w, h)
        box = cover_box(scaled, w, h, options.crop_anchor)  # the image's window, also for the mask
        return scaled.crop(box), None if mask is None else cover_scale(mask, w, h).crop(box)
    return fit_area(piece, w, h), None if mask is None else fit_area(mask, w, h)


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """Size as displayed without decoding pixels (orientations 5-8 swap width and height)."""
    orientation = image.getexif().get(0x0112, 1)
    w, h = image.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _scale_needed(size: tuple[int, int], options: PreprocessOptions) -> float:
    w, h = size
    if options.mode == "crop":
        return min(1.0, max(options.width / w, options.height / h))
    return min(1.0, math.sqrt(options.width * options.height / (w * h)))


def _is_small(size: tuple[int, int], options: PreprocessOptions) -> bool:
    w, h = size
    if options.mode == "crop":
        return w < options.width or h < options.height
    return w * h < options.width * options.height


def _base_caption(item: OriginItem, generated: list[str], policy: str) -> str:
    try:
        existing = item.read_caption()
    except CaptionError:
        existing = None
    return format_tags(merge_captions(existing, generated, policy))


def _save(image: Image.Image, folder: Path, stem: str, output_format: str) -> str:
    name = f"{stem}{OUTPUT_FORMATS[output_format]}"
    with atomic_path(folder / name) as tmp:
        if output_format == "png":
            image.save(tmp, format="PNG", compress_level=1)  # lossless either way; level 1 is several times faster
        else:
            image.save(tmp, format="JPEG", quality=95)
    return name


def _save_mask(mask: Image.Image | None, folder: Path, stem: str) -> None:
    """``<stem>.mask.png`` (8-bit grey) beside the training image ``stem``; nothing without a mask."""
    if mask is not None:
        with atomic_path(folder / f"{stem}{MASK_SUFFIX}") as tmp:
            mask.convert("L").save(tmp, format="PNG", compress_level=1)


def _swap_in(version: VersionPaths, build: Path, repeats: int) -> Path:
    """Replace the current ``<repeats>_<project>`` folder with the freshly built one."""
    old = version.processed_dir()
    parked = None
    if old is not None:
        parked = version.processed_parent / f".old-{uuid.uuid4().hex[:8]}"
        os.replace(old, parked)
    target = version.processed_parent / version.processed_folder_name(repeats)
    os.replace(build, target)
    if parked is not None:
        shutil.rmtree(parked, ignore_errors=True)
    return target
