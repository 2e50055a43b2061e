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
    """Tag every origin image; raises ``TaggerUnavailable`` (with what to install) before starting."""
    state = tagger.availability()
    if not state.available:
        raise TaggerUnavailable(f"{tagger.name} is unavailable: {state.reason}. To use it: {state.install_hint}")
    items = list_origin(version)
    generated: dict[str, list[str]] = {}
    failed = []
    for done, item in enumerate(items, start=1):
        try:
            generated[item.stem] = tagger.tag(load_upright(item.image, (255, 255, 255)))
        except (OSError, ValueError) as exc:
            failed.append(Refusal(item.image.name, f"tagging failed ({exc})"))
        if progress:
            progress(done, len(items), item.image.name)
    with version.lock():
        stored = read_json(version.generated_tags_file, default={}) or {}
        stored.update(generated)
        atomic_write_json(version.generated_tags_file, stored)
    return AutotagResult(len(generated), tuple(failed))
