"""``<root>/queue.json``: the order of the queued jobs and where every known job's run folder is.

Job records live in their run folders (``job.json``); this file only lists them: ``queued`` (ids in
queue order) and ``runs`` (id -> run folder, relative to the queue root when possible, so moving
the whole output folder keeps it valid). Written atomically after every change.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_json, read_json

QUEUE_FILE = "queue.json"
QUEUE_FILE_VERSION = 1

_log = logging.getLogger(__name__)


@dataclass
class QueueIndex:
    queued: list[str] = field(default_factory=list)
    runs: dict[str, Path] = field(default_factory=dict)


def read_index(root: Path) -> QueueIndex:
    """The saved index (empty when there is none; a corrupt file is logged and read as empty)."""
    try:
        data = read_json(root / QUEUE_FILE, default={}) or {}
    except ValueError as exc:
        _log.error("job queue index unreadable, starting empty: %s", exc)
        return QueueIndex()
    runs = {str(k): _absolute(root, v) for k, v in (data.get("runs") or {}).items() if isinstance(v, str)}
    queued = [str(i) for i in data.get("queued") or [] if str(i) in runs]
    return QueueIndex(queued, runs)


def write_index(root: Path, index: QueueIndex) -> None:
    data = {"version": QUEUE_FILE_VERSION, "queued": list(index.queued),
            "runs": {job_id: _relative(root, path) for job_id, path in index.runs.items()}}
    atomic_write_json(root / QUEUE_FILE, data)


def _relative(root: Path, path: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive on Windows
        return str(path)


def _absolute(root: Path, text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else Path(os.path.normpath(root / path))
