"""Uploading images, captions and zip archives into a version's ``dataset/origin/``.

Uploads add to the dataset. Replacing is explicit (``replace=True``): the current ``origin/`` is
moved to ``dataset/replaced/<time>/``, never deleted. Each file is checked on its own; a refused
file is listed with its reason and the rest goes in.

Names: an image keeps its name (characters that cannot be in a file name become ``_``). When a
different image with the same stem is already there, the new one (and its caption from the same
upload) is stored as ``stem (2)``; the very same bytes again are skipped. Captions are written
after the images of the same upload, so they follow their image's final stem; a caption that would
overwrite a different existing caption is refused (editing captions is the curation step's job).

Small images are accepted and listed in ``small`` with the factor training will enlarge them by
(for the version's ``resolution`` setting, else 512x512), so the user can drop them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from PIL import Image

from ..atomic import atomic_write_bytes
from ..projects.layout import VersionPaths
from .captions import CAPTION_EXTENSIONS, CaptionError, decode_caption
from .image_checks import DEFAULT_RESOLUTION, ImageLimits, ImageRejected, check_image_bytes, upscale_note
from .origin_files import safe_file_stem
from .safe_zip import JUNK_NAMES, Refusal, ZipLimits, ZipRefused, open_zip, plan_zip, read_entry
from .small_images import version_resolution

ProgressFn = Callable[[int, int, str], None]
MAX_CAPTION_BYTES = 1024 * 1024


@dataclass(frozen=True)
class UploadResult:
    """What an upload did: stored file names, renames (incoming, stored), skipped and refused files."""

    added: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...]
    skipped: tuple[Refusal, ...]
    refused: tuple[Refusal, ...]
    replaced_to: Path | None = None
    small: tuple[Refusal, ...] = ()  # accepted, flagged: (stored name, "8x8: will be upscaled 64x ...")


@dataclass(frozen=True)
class _Item:
    name: str
    label: str
    load: Callable[[], bytes]

    @property
    def pair_key(self) -> str:
        """Label without extension: pairs an image with its caption from the same folder."""
        suffix = Path(self.name).suffix
        return self.label[: len(self.label) - len(suffix)] if suffix else self.label


@dataclass
class _Batch:
    origin: Path
    existing: dict[str, Path]
    stem_map: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[Refusal] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    small: list[Refusal] = field(default_factory=list)
    resolution: tuple[int, int] = DEFAULT_RESOLUTION


def upload(
    version: VersionPaths,
    sources: Sequence[str | os.PathLike],
    *,
    replace: bool = False,
    image_limits: ImageLimits = ImageLimits(),
    zip_limits: ZipLimits = ZipLimits(),
    progress: ProgressFn | None = None,
) -> UploadResult:
    """Add image files, caption files and zip archives of those to ``origin/``."""
    with contextlib.ExitStack() as stack, version.lock():
        items, skipped, refused = _expand(sources, zip_limits, image_limits.max_file_bytes, stack)
        replaced_to = _set_aside_origin(version) if replace else None
        batch = _land(version, items, skipped, refused, image_limits, progress)
    return _result(batch, replaced_to)


def add_files(
    version: VersionPaths,
    files: Sequence[tuple[str, bytes]],
    *,
    image_limits: ImageLimits = ImageLimits(),
) -> UploadResult:
    """Add files held in memory, ``(name, bytes)`` (images and same-stem captions), to ``origin/``.

    The same checks, naming and duplicate rules as ``upload`` (which reads its files from disk);
    for files fetched from elsewhere, such as a booru import.
    """
    items = [_Item(name, name, _bytes_loader(data)) for name, data in files]
    with version.lock():
        batch = _land(version, items, [], [], image_limits, None)
    return _result(batch, None)


def _bytes_loader(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _land(
    version: VersionPaths,
    items: Sequence[_Item],
    skipped: list[Refusal],
    refused: list[Refusal],
    image_limits: ImageLimits,
    progress: ProgressFn | None,
) -> _Batch:
    """Check and store ``items`` (images first, then captions) in ``origin/``; the caller holds the lock."""
    version.origin.mkdir(parents=True, exist_ok=True)
    batch = _Batch(version.origin, _existing_images(version.origin), skipped=skipped, refused=refused,
                   resolution=version_resolution(version))
    images = [i for i in items if Path(i.name).suffix.lower() not in CAPTION_EXTENSIONS]
    captions = [i for i in items if Path(i.name).suffix.lower() in CAPTION_EXTENSIONS]
    total = len(items)
    ordered = [(item, False) for item in images] + [(item, True) for item in captions]
    for done, (item, is_caption) in enumerate(ordered, start=1):
        try:
            data = item.load()
            if is_caption:
                _store_caption(batch, item, data)
            else:
                _store_image(batch, item, data, image_limits)
        except (ImageRejected, CaptionError, ValueError, OSError) as exc:
            batch.refused.append(Refusal(item.label, getattr(exc, "reason", None) or str(exc)))
        if progress:
            progress(done, total, item.label)
    return batch


def _result(batch: _Batch, replaced_to: Path | None) -> UploadResult:
    return UploadResult(
        tuple(batch.added), tuple(batch.renamed), tuple(batch.skipped), tuple(batch.refused), replaced_to,
        tuple(batch.small),
    )


def _expand(
    sources: Iterable[str | os.PathLike], limits: ZipLimits, max_file_bytes: int, stack: contextlib.ExitStack
) -> tuple[list[_Item], list[Refusal], list[Refusal]]:
    """Turn paths into items to load; zips are opened (kept open by ``stack``) and vetted."""
    items: list[_Item] = []
    skipped: list[Refusal] = []
    refused: list[Refusal] = []
    for source in sources:
        path = Path(source)
        if path.name.lower() in JUNK_NAMES or path.name.startswith("._"):
            skipped.append(Refusal(path.name, "operating-system metadata, not part of the dataset"))
        elif not path.is_file():
            refused.append(Refusal(path.name, f"not a readable file ({path})"))
        elif path.suffix.lower() == ".zip":
            try:
                archive = stack.enter_context(open_zip(str(path), path.name))
                plan = plan_zip(archive, path.name, limits)
            except ZipRefused as exc:
                refused.append(Refusal(path.name, str(exc)))
                continue
            items += [_Item(e.name, e.label, _zip_loader(archive, e)) for e in plan.entries]
            skipped += plan.skipped
            refused += plan.refused
        elif path.stat().st_size > max_file_bytes:
            refused.append(Refusal(path.name, f"{path.stat().st_size} bytes is over the {max_file_bytes}-byte limit"))
        else:
            items.append(_Item(path.name, path.name, path.read_bytes))
    return items, skipped, refused


def _zip_loader(archive, entry) -> Callable[[], bytes]:
    return lambda: read_entry(archive, entry)


def _store_image(batch: _Batch, item: _Item, data: bytes, limits: ImageLimits) -> None:
    facts = check_image_bytes(data, item.label, limits)
    incoming = safe_file_stem(Path(item.name).stem)
    ext = Path(item.name).suffix.lower()
    if ext not in Image.registered_extensions():
        ext = _extension_for(facts.format)
    present = batch.existing.get(incoming)
    if present is not None and _sha256(present.read_bytes()) == _sha256(data):
        batch.skipped.append(Refusal(item.label, f"already in the dataset as {present.name}"))
        batch.stem_map.setdefault(item.pair_key, incoming)
        return
    stem = incoming if present is None else _free_stem(incoming, batch.existing)
    target = batch.origin / f"{stem}{ext}"
    atomic_write_bytes(target, data)
    batch.existing[stem] = target
    batch.stem_map.setdefault(item.pair_key, stem)
    batch.added.append(target.name)
    if stem != incoming or target.name != item.name:
        batch.renamed.append((item.label, target.name))
    note = upscale_note(facts.width, facts.height, batch.resolution)
    if note:
        batch.small.append(Refusal(target.name, note))


def _store_caption(batch: _Batch, item: _Item, data: bytes) -> None:
    if len(data) > MAX_CAPTION_BYTES:
        raise CaptionError(f"{item.label}: caption of {len(data)} bytes is over {MAX_CAPTION_BYTES} bytes")
    decode_caption(data, item.label)
    incoming = safe_file_stem(Path(item.name).stem)
    stem = batch.stem_map.get(item.pair_key, incoming)
    target = batch.origin / f"{stem}{Path(item.name).suffix.lower()}"
    if target.exists():
        if target.read_bytes() == data:
            batch.skipped.append(Refusal(item.label, f"already in the dataset as {target.name}"))
            return
        raise CaptionError(
            f"{item.label}: {target.name} already holds a different caption; "
            "edit it in the tag editor or replace the dataset"
        )
    atomic_write_bytes(target, data)
    batch.added.append(target.name)


def _existing_images(origin: Path) -> dict[str, Path]:
    return {
        p.stem: p
        for p in origin.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in CAPTION_EXTENSIONS
    }


def _set_aside_origin(version: VersionPaths) -> Path | None:
    if not version.origin.is_dir() or not any(version.origin.iterdir()):
        return None
    target = version.dataset / "replaced" / time.strftime("%Y%m%d-%H%M%S")
    target.parent.mkdir(parents=True, exist_ok=True)
    while target.exists():
        target = target.with_name(target.name + "-1")
    os.replace(version.origin, target)
    return target


def _free_stem(stem: str, taken: dict[str, Path]) -> str:
    number = 2
    while f"{stem} ({number})" in taken:
        number += 1
    return f"{stem} ({number})"


def _extension_for(image_format: str) -> str:
    preferred = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
    if image_format in preferred:
        return preferred[image_format]
    for ext, fmt in Image.registered_extensions().items():
        if fmt == image_format:
            return ext
    return ".img"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
