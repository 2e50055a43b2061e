"""Exact and near-duplicate images in a version's ``origin/``, reported as groups.

Exact duplicates share a SHA-256 of their bytes. Near duplicates (re-saved, resized, slightly
recoloured copies) have 64-bit difference hashes (dHash: the sign of horizontal brightness steps
on a 9x8 grey thumbnail) within ``max_distance`` differing bits. Nothing is removed: the user
picks what to drop (``origin_files.drop_images``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, cast

import numpy as np
from PIL import Image, ImageOps

from ..projects.layout import VersionPaths
from ..train.color_modes import to_rgb
from .origin_files import list_origin

DEFAULT_MAX_DISTANCE = 6


@dataclass(frozen=True)
class DuplicateReport:
    """Groups of file names: identical bytes, and visually near-identical images."""

    exact: tuple[tuple[str, ...], ...]
    near: tuple[tuple[str, ...], ...]
    unreadable: tuple[str, ...] = ()


def difference_hash(image: Image.Image) -> int:
    """64-bit dHash of ``image`` (orientation applied, first frame, any mode)."""
    upright = cast(Image.Image, ImageOps.exif_transpose(image))  # None only for in_place=True
    grey = to_rgb(upright).convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def find_duplicates(
    version: VersionPaths,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    progress: Callable[[int, int, str], None] | None = None,
) -> DuplicateReport:
    """Group the images of ``origin/`` by identical bytes and by close perceptual hashes."""
    paths = [item.image for item in list_origin(version)]
    return find_duplicate_files(paths, max_distance, progress)


def find_duplicate_files(
    paths: Sequence[Path],
    max_distance: int = DEFAULT_MAX_DISTANCE,
    progress: Callable[[int, int, str], None] | None = None,
) -> DuplicateReport:
    digests: dict[str, str] = {}
    hashes: dict[str, int] = {}
    unreadable = []
    for done, path in enumerate(paths, start=1):
        data = path.read_bytes()
        digests[path.name] = hashlib.sha256(data).hexdigest()
        try:
            with Image.open(path) as image:
                image.draft("RGB", (64, 64))
                hashes[path.name] = difference_hash(image)
        except Exception:  # a file that stopped being readable is reported, not fatal
            unreadable.append(path.name)
        if progress:
            progress(done, len(paths), path.name)
    exact = _groups_by_key(digests)
    near = [g for g in _near_groups(hashes, max_distance) if len({digests[n] for n in g}) > 1]
    return DuplicateReport(tuple(exact), tuple(near), tuple(unreadable))


def _groups_by_key(values: dict[str, str]) -> list[tuple[str, ...]]:
    groups: dict[str, list[str]] = {}
    for name, key in values.items():
        groups.setdefault(key, []).append(name)
    return sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1)


def _near_groups(hashes: dict[str, int], max_distance: int) -> list[tuple[str, ...]]:
    """Connected components of 'within max_distance bits' (union-find)."""
    names = sorted(hashes)
    parent = list(range(len(names)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            if bin(hashes[a] ^ hashes[names[j]]).count("1") <= max_distance:
                parent[find(j)] = find(i)
    components: dict[int, list[str]] = {}
    for i, name in enumerate(names):
        components.setdefault(find(i), []).append(name)
    return sorted(tuple(c) for c in components.values() if len(c) > 1)
