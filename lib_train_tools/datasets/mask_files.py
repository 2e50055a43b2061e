"""Loss masks in a version's ``dataset/origin/``: importing them by name, and counting them.

A mask says where an image trains (``masked_loss``, see ``train/data/masks.py``): white trains,
black is ignored, grey weighs in between. It is stored as an 8-bit greyscale PNG ``<stem>.mask.png``
beside its uploaded image (``cat.png`` -> ``cat.mask.png``); preprocessing carries it, through the
image's own resize, crop, split and flip, to every training image made from it.

Accepted names, for the uploaded image ``cat.png`` (loose files or ``.zip`` archives, whose folders
are ignored, so ``masks/cat.png`` in a zip is ``cat.png``):

* ``cat.png``: the image's own stem, with any mask extension (a separate upload, or a zip of masks);
* ``cat.mask.png``, ``cat_mask.png``, ``cat-mask.png`` (``mask`` in any case).

The whole stem is tried first, so an image that is itself called ``cat_mask`` gets ``cat_mask.png``.
Stems are cleaned the way the upload cleans image names (``origin_files.safe_file_stem``). Formats:
PNG, WebP and JPEG (JPEG's artefacts turn hard edges slightly grey); colour masks count by their
luminance and transparent parts as black, as the trainer reads a mask file (``masks.grey_mask``).

Sizes: the mask is turned upright (EXIF orientation) like its image. A mask of another size but the
same aspect ratio (within 1 %) is resized to the image's size with bilinear filtering: the trainer
averages a mask over 8 x 8-pixel cells anyway, so the soft edge this makes costs nothing, while
nearest-neighbour would shift edges by up to half a mask pixel. A mask of another aspect ratio is
refused with both sizes: it would be stretched onto the wrong pixels.

Nothing is overwritten silently: an image that already has a different mask keeps it unless
``replace`` is given, and then the old mask is moved to ``dataset/replaced_masks/<time>/``, never
deleted; the very same mask again is skipped. An image with transparency is refused a mask file, since
its alpha channel is its mask and comes first (``masks.find_mask``). A mask whose name matches no
uploaded image is listed as unmatched; of several masks for one image in one import, the first wins.
Every file is written atomically (``atomic.py``), under the version's lock.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, cast

from PIL import Image, ImageOps

from ..atomic import atomic_path
from ..projects.layout import VersionPaths
from ..train.color_modes import ALPHA_MODES
from ..train.data.masks import alpha_channel, grey_mask
from ..train.mask_names import mask_path_for
from .image_checks import ImageLimits, ImageRejected, check_image_bytes
from .origin_files import list_origin, safe_file_stem
from .safe_zip import JUNK_NAMES, Refusal, ZipLimits, ZipRefused, open_zip, plan_zip, read_entry

ProgressFn = Callable[[int, int, str], None]
MASK_EXTENSIONS = (".png", ".webp", ".jpg", ".jpeg")
MASK_NAME_TAIL = re.compile(r"[._-]mask$", re.IGNORECASE)
ASPECT_TOLERANCE = 0.01  # relative difference of width / height still taken as the same picture
RESIZE_FILTER = Image.Resampling.BILINEAR
REPLACED_FOLDER = "replaced_masks"


@dataclass(frozen=True)
class MaskImportResult:
    """What an import did: stored masks (incoming name, stored name), masks resized to their image
    (name, "WxH -> WxH"), replaced ones, names matching no image, skipped and refused files."""

    added: tuple[tuple[str, str], ...]
    resized: tuple[Refusal, ...]
    replaced: tuple[str, ...]
    unmatched: tuple[str, ...]
    skipped: tuple[Refusal, ...]
    refused: tuple[Refusal, ...]
    replaced_to: Optional[Path] = None


@dataclass
class _Import:
    version: VersionPaths
    images: dict[str, Path]
    replace: bool
    limits: ImageLimits
    done: dict[str, str] = field(default_factory=dict)  # image stem -> the incoming mask that went in
    added: list[tuple[str, str]] = field(default_factory=list)
    resized: list[Refusal] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    skipped: list[Refusal] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    replaced_to: Optional[Path] = None


def import_masks(
    version: VersionPaths,
    sources: Sequence[str | os.PathLike],
    *,
    replace: bool = False,
    image_limits: ImageLimits = ImageLimits(),
    zip_limits: ZipLimits = ZipLimits(),
    progress: ProgressFn | None = None,
) -> MaskImportResult:
    """Store the mask files and zip archives ``sources`` beside their images in ``origin/``."""
    with contextlib.ExitStack() as stack, version.lock():
        job = _Import(version, {item.stem: item.image for item in list_origin(version)}, bool(replace), image_limits)
        items = _expand(sources, zip_limits, image_limits.max_file_bytes, stack, job)
        for done, (name, label, load) in enumerate(items, start=1):
            try:
                _import_one(job, name, label, load)
            except (ImageRejected, ValueError, OSError) as exc:
                job.refused.append(Refusal(label, getattr(exc, "reason", None) or str(exc)))
            if progress:
                progress(done, len(items), label)
    return MaskImportResult(tuple(job.added), tuple(job.resized), tuple(job.replaced), tuple(job.unmatched),
                            tuple(job.skipped), tuple(job.refused), job.replaced_to)


def matching_stem(name: str, stems: set[str] | dict[str, Path]) -> Optional[str]:
    """The stem of the uploaded image a mask file called ``name`` belongs to, or None (rules above)."""
    stem = Path(name).stem
    candidates = [stem]
    if MASK_NAME_TAIL.search(stem):
        candidates.append(MASK_NAME_TAIL.sub("", stem))
    for candidate in candidates:
        cleaned = safe_file_stem(candidate) if candidate else ""
        if cleaned in stems:
            return cleaned
    return None


_Item = tuple[str, str, Callable[[], bytes]]  # flat name, label for messages, loader


def _expand(sources: Sequence[str | os.PathLike], limits: ZipLimits, max_bytes: int,
            stack: contextlib.ExitStack, job: _Import) -> list[_Item]:
    items: list[_Item] = []
    for source in sources:
        path = Path(source)
        if path.name.lower() in JUNK_NAMES or path.name.startswith("._"):
            job.skipped.append(Refusal(path.name, "operating-system metadata, not a mask"))
        elif not path.is_file():
            job.refused.append(Refusal(path.name, f"not a readable file ({path})"))
        elif path.suffix.lower() == ".zip":
            try:
                archive = stack.enter_context(open_zip(str(path), path.name))
                plan = plan_zip(archive, path.name, limits)
            except ZipRefused as exc:
                job.refused.append(Refusal(path.name, str(exc)))
                continue
            items += [(e.name, e.label, _entry_loader(archive, e)) for e in plan.entries]
            job.skipped += plan.skipped
            job.refused += plan.refused
        elif path.stat().st_size > max_bytes:
            job.refused.append(Refusal(path.name, f"{path.stat().st_size} bytes is over the {max_bytes}-byte limit"))
        else:
            items.append((path.name, path.name, path.read_bytes))
    return items


def _entry_loader(archive, entry) -> Callable[[], bytes]:
    return lambda: read_entry(archive, entry)


def _import_one(job: _Import, name: str, label: str, load: Callable[[], bytes]) -> None:
    if Path(name).suffix.lower() not in MASK_EXTENSIONS:
        raise ValueError(f"not a mask image: masks are {', '.join(e[1:].upper() for e in MASK_EXTENSIONS)} files")
    stem = matching_stem(name, job.images)
    if stem is None:
        job.unmatched.append(label)
        return
    if stem in job.done:
        raise ValueError(f"{job.done[stem]} in this import is already the mask of {job.images[stem].name}")
    image_size, has_alpha = _image_facts(job.images[stem])
    if has_alpha:
        raise ValueError(f"{job.images[stem].name} has transparency: its alpha channel is its mask and comes first; "
                         "remove the transparency to use a mask file")
    mask = _decode(load(), label, job.limits)
    if mask.size != image_size:
        before = mask.size
        mask = _fit_to(mask, image_size, job.images[stem].name)
        job.resized.append(Refusal(label, f"{before[0]}x{before[1]} -> {image_size[0]}x{image_size[1]}"))
    job.done[stem] = label
    _store(job, stem, label, _png_bytes(mask))


def _store(job: _Import, stem: str, label: str, data: bytes) -> None:
    target = mask_path_for(job.images[stem])
    if target.is_file():
        if target.read_bytes() == data:
            job.skipped.append(Refusal(label, f"the same mask is already there ({target.name})"))
            return
        if not job.replace:
            raise ValueError(f"{job.images[stem].name} already has a different mask ({target.name}); "
                             "tick 'Replace existing masks' to replace it (the old one is set aside)")
        os.replace(target, _replaced_folder(job) / target.name)
        job.replaced.append(target.name)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    job.added.append((label, target.name))


def _replaced_folder(job: _Import) -> Path:
    if job.replaced_to is None:
        folder = job.version.dataset / REPLACED_FOLDER / time.strftime("%Y%m%d-%H%M%S")
        while folder.exists():
            folder = folder.with_name(folder.name + "-1")
        folder.mkdir(parents=True)
        job.replaced_to = folder
    return job.replaced_to


def _image_facts(image_path: Path) -> tuple[tuple[int, int], bool]:
    """The uploaded image's upright size, and whether it has a (not fully opaque) alpha channel."""
    with Image.open(image_path) as image:
        w, h = image.size
        upright = (h, w) if image.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)
        maybe_alpha = image.mode in ALPHA_MODES or "transparency" in image.info
        return upright, maybe_alpha and alpha_channel(image) is not None


def _decode(data: bytes, label: str, limits: ImageLimits) -> Image.Image:
    """The mask as an upright 8-bit ``L`` image (``masks.grey_mask``); ImageRejected when unreadable."""
    check_image_bytes(data, label, limits)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return grey_mask(cast(Image.Image, ImageOps.exif_transpose(image)))


def _fit_to(mask: Image.Image, size: tuple[int, int], image_name: str) -> Image.Image:
    """``mask`` resized to ``size`` when both have the same aspect ratio; ValueError otherwise."""
    (mw, mh), (iw, ih) = mask.size, size
    if abs((mw / mh) / (iw / ih) - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(f"the mask is {mw}x{mh} but {image_name} is {iw}x{ih}: another aspect ratio, so it "
                         "would be stretched onto the wrong pixels; export the mask at the image's size")
    return mask.resize(size, RESIZE_FILTER)


def _png_bytes(mask: Image.Image) -> bytes:
    buffer = io.BytesIO()
    mask.convert("L").save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class MaskCounts:
    """How many uploaded images have a loss mask, and how many of those masks are their alpha channel."""

    images: int
    with_mask: int
    from_alpha: int

    def text(self) -> str:
        return f"{self.with_mask} of {self.images} images have a mask ({self.from_alpha} from alpha)"


def mask_source(image_path: Path) -> Optional[str]:
    """Where the trainer would take ``image_path``'s mask from: "alpha", "file" or None (``find_mask``'s order)."""
    with Image.open(image_path) as image:
        if (image.mode in ALPHA_MODES or "transparency" in image.info) and alpha_channel(image) is not None:
            return "alpha"
    return "file" if mask_path_for(image_path).is_file() else None


def mask_counts(version: VersionPaths) -> MaskCounts:
    """The counts over the uploaded images (unreadable images count as having no mask)."""
    sources = []
    for item in list_origin(version):
        try:
            sources.append(mask_source(item.image))
        except (OSError, ValueError, Image.DecompressionBombError):
            sources.append(None)
    return MaskCounts(len(sources), sum(s is not None for s in sources), sources.count("alpha"))
