"""The folder layout of one version, in one place.

::

    <root>/projects/<project>/versions/<version>/
        version.json              name, id, times
        settings.json             the version's saved training settings
        dataset/origin/           what the user gave, never modified by processing or curation
        dataset/processed/<repeats>_<project>/   what trains (images + .txt captions)
        dataset/reg/              regularisation images
        dataset/*.json            generated tags, base captions, curation journal, booru sources
        trains/<run>/             training runs

The lock file lives outside the version (``<root>/.locks/<id>.lock``) and is keyed by the
version's id, so renaming a version does not change its lock and no handle stays open inside a
folder being renamed (Windows refuses to rename such folders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..atomic import FileLock

PROCESSED_FOLDER_PATTERN = re.compile(r"^(\d+)_(.+)$")


@dataclass(frozen=True)
class VersionPaths:
    """Paths of one version; ``lock()`` gives its cross-process lock."""

    root: Path
    project: str
    name: str
    version_id: str
    lock_file: Path

    @property
    def meta_file(self) -> Path:
        return self.root / "version.json"

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.json"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def origin(self) -> Path:
        return self.dataset / "origin"

    @property
    def processed_parent(self) -> Path:
        return self.dataset / "processed"

    @property
    def reg(self) -> Path:
        return self.dataset / "reg"

    @property
    def trains(self) -> Path:
        return self.root / "trains"

    @property
    def generated_tags_file(self) -> Path:
        return self.dataset / "generated_tags.json"

    @property
    def base_captions_file(self) -> Path:
        return self.dataset / "base_captions.json"

    @property
    def curation_journal_file(self) -> Path:
        return self.dataset / "curation_journal.json"

    @property
    def booru_sources_file(self) -> Path:
        """Where each image imported from a booru came from (``datasets/booru_import.py``)."""
        return self.dataset / "booru_sources.json"

    def lock(self, timeout: float = 60.0) -> FileLock:
        return FileLock(self.lock_file, timeout, what=f"version {self.project!r}/{self.name!r}")

    def processed_folder_name(self, repeats: int) -> str:
        return f"{int(repeats)}_{self.project}"

    def processed_dir(self) -> Path | None:
        """The current ``<repeats>_<name>`` folder under ``processed/``, or None before preprocessing."""
        if not self.processed_parent.is_dir():
            return None
        found = sorted(
            p for p in self.processed_parent.iterdir() if p.is_dir() and PROCESSED_FOLDER_PATTERN.match(p.name)
        )
        return found[0] if found else None

    def processed_repeats(self) -> int | None:
        folder = self.processed_dir()
        if folder is None:
            return None
        match = PROCESSED_FOLDER_PATTERN.match(folder.name)
        return int(match.group(1)) if match else None
