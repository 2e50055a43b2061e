"""Making a run's LoRA files findable by the WebUI's Lora extension under unique names.

The Lora extension finds a file by its base name anywhere under its LoRA folder (subfolders
included, names must be unique), and Forge caches loaded LoRAs by file name: a file replaced in
place under the same name is not read again. So a LoRA to preview is linked (or copied) into a
subfolder of the LoRA folder under a name made from the file's path, size and modification time:
the same file keeps its name, a changed file gets a new one, two runs never share one. Names use
only letters, digits, ``-`` and ``_``, so ``<lora:NAME:weight>`` always parses.

A hard link is removed again by ``unstage(name)`` as soon as its image is drawn (linking again is
free). A copy (the LoRA folder is on another file system) is kept for the next cell and removed by
``clear()`` (after a preview grid, at start-up and when the extension unloads) or, during a
session, when it was not used for ``stale_after`` seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable

from ..atomic import atomic_path, temporary_target

PREVIEW_FOLDER = "train_tools_previews"
NAME_PREFIX = "tt-preview-"
STALE_AFTER_S = 3600.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class LoraStaging:
    def __init__(self, folder: Path, stale_after: float = STALE_AFTER_S, clock: Callable[[], float] = time.time):
        self.folder = Path(folder)
        self.stale_after = stale_after
        self.clock = clock
        self._last_used: dict[Path, float] = {}
        self._linked: set[Path] = set()

    def stage(self, source: Path) -> str:
        """The name under which the Lora extension finds ``source`` (linked or copied on first use)."""
        source = Path(source)
        stat = source.stat()
        key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]
        name = f"{NAME_PREFIX}{_UNSAFE.sub('_', source.stem)[:48]}-{digest}"
        target = self.folder / f"{name}{source.suffix.lower()}"
        self._drop_stale(keep=target)
        if not target.exists():
            with atomic_path(target, create=False) as partial:  # the name stays free for os.link
                linked = _link_or_copy(source, partial)
            if linked:
                self._linked.add(target)
        self._last_used[target] = self.clock()
        return name

    def unstage(self, name: str) -> None:
        """Done with ``name``: a hard link goes at once, a copy stays for the next cell."""
        for target in [t for t in self._linked if t.stem == name]:
            target.unlink(missing_ok=True)
            self._linked.discard(target)
            self._last_used.pop(target, None)

    def clear(self) -> int:
        """Remove every staged file (also ones an earlier session left); returns how many."""
        removed = 0
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.is_file() and (path.name.startswith(NAME_PREFIX) or _is_temporary(path.name)):
                    path.unlink(missing_ok=True)
                    removed += 1
        self._last_used.clear()
        self._linked.clear()
        return removed

    def _drop_stale(self, keep: Path) -> None:
        now = self.clock()
        for path, used in list(self._last_used.items()):
            if path != keep and now - used > self.stale_after:
                path.unlink(missing_ok=True)
                del self._last_used[path]
                self._linked.discard(path)


def _is_temporary(name: str) -> bool:
    """A half-staged file: ``atomic_path``'s temporary, or an older version's ``.<hex>.partial``."""
    return temporary_target(name) is not None or name.endswith(".partial")


def _link_or_copy(source: Path, target: Path) -> bool:
    """A hard link when the file system allows one (True: no extra space), else a copy (False)."""
    try:
        os.link(source, target)
        return True
    except OSError:
        shutil.copyfile(source, target)
        return False
