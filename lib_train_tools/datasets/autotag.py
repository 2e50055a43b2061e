"""Running a tagger over a version's ``origin/`` images into ``dataset/generated_tags.json``.

Generated tags are stored per origin stem and never written into ``origin/``. Preprocessing merges
them with the user's captions by the chosen policy (keep, ignore, prepend, append).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..atomic import atomic_write_json, read_json
from ..contracts import Tagger
from ..projects.layout import VersionPaths
from .image_ops import load_upright
from .origin_files import list_origin
from .safe_zip import Refusal
from .taggers import TaggerUnavailable

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class AutotagResult:
    tagged: int
    failed: tuple[Refusal, ...]


def autotag(version: VersionPaths, tagger: Tagger, progress: ProgressFn | None = None) -> AutotagResult:
    """Tag every origin image; raises ``TaggerUnavailable`` (with what to install) before starting.

    A tagger with ``tag_batch`` (WD14) gets ``images_per_call()`` images at a time; progress is
    reported once per image either way."""
    state = tagger.availability()
    if not state.available:
        raise TaggerUnavailable(f"{tagger.name} is unavailable: {state.reason}. To use it: {state.install_hint}")
    items = list_origin(version)
    tag_batch = getattr(tagger, "tag_batch", None)
    per_call = getattr(tagger, "images_per_call", None)
    step = max(1, int(per_call())) if tag_batch is not None and per_call is not None else 1
    generated: dict[str, list[str]] = {}
    failed = []
    done = 0
    for start in range(0, len(items), step):
        loaded = []
        for item in items[start:start + step]:
            try:
                loaded.append((item, load_upright(item.image, (255, 255, 255))))
            except (OSError, ValueError) as exc:
                failed.append(Refusal(item.image.name, f"tagging failed ({exc})"))
        try:
            if tag_batch is not None:
                results = tag_batch([image for _, image in loaded]) if loaded else []
            else:
                results = [tagger.tag(image) for _, image in loaded]
            generated.update((item.stem, tags) for (item, _), tags in zip(loaded, results))
        except (OSError, ValueError) as exc:
            failed.extend(Refusal(item.image.name, f"tagging failed ({exc})") for item, _ in loaded)
        for item in items[start:start + step]:
            done += 1
            if progress:
                progress(done, len(items), item.image.name)
    with version.lock():
        stored = read_json(version.generated_tags_file, default={}) or {}
        stored.update(generated)
        atomic_write_json(version.generated_tags_file, stored)
    return AutotagResult(len(generated), tuple(failed))
