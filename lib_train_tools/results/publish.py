"""Publishing a checkpoint: a copy in the LoRA folder under a chosen name, with its card files.

``publish`` writes, in ``lora_dir``:

    <name>.safetensors     the checkpoint, copied to a hidden temporary name and renamed
    <name>.json            the WebUI Lora card's user metadata: "description", "sd version"
                           (SD1/SD2/SDXL/Unknown), "activation text" (added to the prompt after the
                           <lora:...> tag: the trigger word), "preferred weight" (0 = the WebUI's
                           default multiplier), "negative text", "notes"; UTF-8, indent 4, as the
                           WebUI's own editor writes it (keys another tool added are kept)
    <name>.preview.png     the card picture, when one is given

A name is taken when any of those three files exists, or when a LoRA file of that name sits in a
subfolder (the WebUI ignores folders, so two files of one name hide each other; compared without
case, as Windows and macOS do). A taken name raises ``PublishConflict`` unless ``overwrite`` is set.
``free_name`` finds the first free one of ``base``, ``base-2``, ``base-3``...
"""

from __future__ import annotations

import filecmp
import json
import math
import os
import shutil
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_path, atomic_write_text
from ..projects.names import MAX_NAME_BYTES, MAX_NAME_CHARS, InvalidNameError, validate_name
from .lora_info import SD_VERSIONS, LoraInfoError, read_lora_info

LORA_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
PREVIEW_SUFFIX = ".preview.png"
LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")   # what the WebUI lists as LoRA files
_SUFFIX_ROOM = 4                                      # room for "-999" after a default name


class PublishError(ValueError):
    """Publishing cannot be done as asked (bad name, missing file, unreadable preview)."""


class PublishConflict(PublishError):
    """The name is taken; ``existing`` is the file that takes it."""

    def __init__(self, name: str, existing: Path):
        self.name = name
        self.existing = Path(existing)
        super().__init__(f"a LoRA named {name!r} already exists ({existing}); choose another name "
                         f"or confirm overwriting it")


def publish(checkpoint: Path, lora_dir: Path, name: str, *, activation_text: str = "",
            preferred_weight: float = 1.0, sd_version: str | None = None, notes: str = "",
            description: str = "", negative_text: str = "", preview_image: Path | None = None,
            overwrite: bool = False) -> Path:
    """Copy ``checkpoint`` to ``lora_dir/<name>.safetensors`` with its card; return that path.

    ``sd_version`` None: read from the checkpoint's metadata. Raises ``PublishConflict`` when the
    name is taken and ``overwrite`` is False; a failed copy leaves no new file behind.
    """
    checkpoint, lora_dir = Path(checkpoint), Path(lora_dir)
    name = validate_lora_name(name)
    if not checkpoint.is_file():
        raise PublishError(f"checkpoint {checkpoint} not found")
    if checkpoint.suffix.lower() != LORA_SUFFIX:
        raise PublishError(f"{checkpoint.name}: only {LORA_SUFFIX} files can be published")
    card = card_metadata(checkpoint, activation_text=activation_text, preferred_weight=preferred_weight,
                         sd_version=sd_version, notes=notes, description=description, negative_text=negative_text)
    existing = taken_by(lora_dir, name)
    if existing is not None and not overwrite:
        raise PublishConflict(name, existing)
    lora_dir.mkdir(parents=True, exist_ok=True)
    target = lora_dir / f"{name}{LORA_SUFFIX}"
    created: list[Path] = []
    try:
        if preview_image is not None:
            _write_preview(Path(preview_image), lora_dir / f"{name}{PREVIEW_SUFFIX}", created)
        _write_card(lora_dir / f"{name}{CARD_SUFFIX}", card, created)
        with atomic_path(target) as tmp:
            shutil.copyfile(checkpoint, tmp)
    except BaseException:
        for path in created:   # sidecars this call added for a LoRA that never arrived
            path.unlink(missing_ok=True)
        raise
    return target


def rename_published(lora_path: Path, new_name: str) -> Path:
    """Give a published LoRA (and its card and picture) another name; returns the new LoRA path.

    ``PublishConflict`` when the new name is taken; the card and picture move first and the LoRA
    last, so an interrupted rename never leaves a LoRA without its card."""
    lora_path = Path(lora_path)
    new_name = validate_lora_name(new_name)
    if not lora_path.is_file():
        raise PublishError(f"{lora_path} is not in the LoRA folder any more")
    existing = taken_by(lora_path.parent, new_name)
    if existing is not None:
        raise PublishConflict(new_name, existing)
    old, folder = lora_path.stem, lora_path.parent
    for suffix in (PREVIEW_SUFFIX, CARD_SUFFIX):
        if (folder / f"{old}{suffix}").is_file():
            os.replace(folder / f"{old}{suffix}", folder / f"{new_name}{suffix}")
    target = folder / f"{new_name}{LORA_SUFFIX}"
    os.replace(lora_path, target)
    return target


def same_content(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes (sizes first, then the contents)."""
    try:
        return Path(a).stat().st_size == Path(b).stat().st_size and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def validate_lora_name(name: str) -> str:
    """The name as a file name (a typed ``.safetensors`` is dropped); ``PublishError`` when it cannot be one.

    The project-name rules apply (any script, emoji, spaces; no slashes, no ``<>:"|?*``, which also
    keeps the WebUI's ``<lora:name:weight>`` syntax intact).
    """
    if isinstance(name, str) and name.strip().lower().endswith(LORA_SUFFIX):
        name = name.strip()[:-len(LORA_SUFFIX)]
    try:
        return validate_name(name, "LoRA name")
    except InvalidNameError as exc:
        raise PublishError(str(exc)) from exc


def taken_by(lora_dir: Path, name: str) -> Path | None:
    """The file that takes ``name`` in ``lora_dir`` (see the module docstring), or None."""
    lora_dir = Path(lora_dir)
    for suffix in (LORA_SUFFIX, CARD_SUFFIX, PREVIEW_SUFFIX):
        path = lora_dir / f"{name}{suffix}"
        if path.exists():
            return path
    return _lora_stems(lora_dir).get(name.lower())


def free_name(lora_dir: Path, base: str) -> str:
    """``base`` if it is free in ``lora_dir``, else the first free ``base-2``, ``base-3``, ..."""
    base = validate_lora_name(base)
    stems = _lora_stems(Path(lora_dir))
    number = 1
    while True:
        candidate = base if number == 1 else f"{base}-{number}"
        if candidate.lower() not in stems and not any(
                (Path(lora_dir) / f"{candidate}{s}").exists() for s in (LORA_SUFFIX, CARD_SUFFIX, PREVIEW_SUFFIX)):
            return candidate
        number += 1


def default_publish_name(project: str, version: str) -> str:
    """``<project>-<version>``, shortened so that a numbered suffix still fits the name rules."""
    name = f"{project}-{version}"[:MAX_NAME_CHARS - _SUFFIX_ROOM]
    while len(name.encode("utf-8")) > MAX_NAME_BYTES - _SUFFIX_ROOM:  # Japanese: 3 bytes a character
        name = name[:-1]
    return validate_lora_name(name.rstrip(" ."))


def auto_publish(final_file: Path, lora_dir: Path, project: str, version: str, *, activation_text: str = "",
                 notes: str = "", preview_image: Path | None = None) -> Path:
    """Publish a finished run's final file as ``<project>-<version>`` (numbered when taken)."""
    base = default_publish_name(project, version)
    for _ in range(100):   # another publisher may take the free name between looking and writing
        try:
            return publish(final_file, lora_dir, free_name(lora_dir, base), activation_text=activation_text,
                           notes=notes, preview_image=preview_image)
        except PublishConflict:
            continue
    raise PublishError(f"no free name for {base!r} in {lora_dir}")


def default_notes(project: str, version: str, run_name: str, epoch: int | None = None,
                  steps: int | None = None) -> str:
    """The card's notes for a published run: where it came from."""
    where = [f"epoch {epoch}"] if epoch is not None else []
    where += [f"{steps} steps"] if steps is not None else []
    return (f"Trained with Train Tools: project {project!r}, version {version!r}, run {run_name!r}"
            + (f" ({', '.join(where)})" if where else "") + ".")


def card_metadata(checkpoint: Path, *, activation_text: str = "", preferred_weight: float = 1.0,
                  sd_version: str | None = None, notes: str = "", description: str = "",
                  negative_text: str = "") -> dict:
    """The ``<name>.json`` content for ``checkpoint``."""
    if sd_version is None:
        try:
            sd_version = read_lora_info(checkpoint).sd_version
        except LoraInfoError as exc:
            raise PublishError(str(exc)) from exc
    if sd_version not in SD_VERSIONS:
        raise PublishError(f"sd version {sd_version!r} is not one of {', '.join(SD_VERSIONS)}")
    if isinstance(preferred_weight, bool) or not isinstance(preferred_weight, (int, float)) \
            or not math.isfinite(preferred_weight):
        raise PublishError(f"preferred weight must be a number, got {preferred_weight!r}")
    return {"description": description, "sd version": sd_version, "activation text": activation_text.strip(),
            "preferred weight": float(preferred_weight), "negative text": negative_text, "notes": notes}


def _write_card(path: Path, card: dict, created: list[Path]) -> None:
    existing: dict = {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        existing = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    if not path.exists():
        created.append(path)
    atomic_write_text(path, json.dumps({**existing, **card}, indent=4, ensure_ascii=False))


def _write_preview(source: Path, target: Path, created: list[Path]) -> None:
    """PNGs are copied as they are (keeping their settings text); other images are converted."""
    try:
        with Image.open(source) as image:
            image_format = image.format
            image.load()
            converted = None if image_format == "PNG" else image.convert("RGBA" if "A" in image.mode else "RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise PublishError(f"preview image {source}: cannot be read as an image ({exc})") from exc
    if not target.exists():
        created.append(target)
    with atomic_path(target) as tmp:
        if converted is None:
            shutil.copyfile(source, tmp)
        else:
            converted.save(tmp, format="PNG")


def _lora_stems(lora_dir: Path) -> dict[str, Path]:
    """Lower-cased names of every LoRA file under ``lora_dir`` (subfolders included)."""
    stems: dict[str, Path] = {}
    if not lora_dir.is_dir():
        return stems
    for folder, _, files in os.walk(lora_dir):
        for file in files:
            stem, suffix = os.path.splitext(file)
            if suffix.lower() in LORA_SUFFIXES and not file.startswith("."):
                stems.setdefault(stem.lower(), Path(folder) / file)
    return stems
