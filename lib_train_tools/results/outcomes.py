"""What became of a run after training: where it was published, which previews were automatic, what failed.

The finishing steps of a completed run (``run_hooks.py``) and the Results panel both write here, so
the panel can say "published as <name>" and mark the grid rendered when training ended. The record
is ``<run_dir>/outcomes.json``, a list of entries (oldest first), each a dict with ``kind``,
``time`` (unix seconds) and ``auto`` (True: done by the app when the run ended):

    {"kind": "published", "name": ..., "path": ..., "checkpoint": <file name in the run>, ...}
    {"kind": "preview", "folder": <folder name under preview/>, ...}
    {"kind": "problem", "step": "publish" | "preview" | "prune", "message": ..., ...}

Adding an entry is a locked read-modify-write of the whole file (written atomically), so the job
thread and a page event may record at the same time. Reading never raises: a damaged record reads
as empty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import FileLock, atomic_write_json, read_json

OUTCOMES_FILE = "outcomes.json"
LOCK_FILE = ".outcomes.lock"
KINDS = ("published", "preview", "problem")


@dataclass(frozen=True)
class Publication:
    name: str
    path: Path
    checkpoint: str  # the published file's name in the run folder
    auto: bool
    time: float


@dataclass(frozen=True)
class RunOutcomes:
    published: list[Publication] = field(default_factory=list)
    auto_previews: frozenset[str] = frozenset()  # preview folder names rendered when the run ended
    problems: list[str] = field(default_factory=list)


def record_outcome(run_dir: Path, kind: str, *, auto: bool, **fields: Any) -> None:
    """Append one entry of ``kind`` to the run's record."""
    if kind not in KINDS:
        raise ValueError(f"outcome kind {kind!r} is not one of {', '.join(KINDS)}")
    run_dir = Path(run_dir)
    entry = {"kind": kind, "time": time.time(), "auto": bool(auto),
             **{k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}}
    with FileLock(run_dir / LOCK_FILE, what=f"the outcome record of {run_dir.name}"):
        entries = _entries(run_dir)
        atomic_write_json(run_dir / OUTCOMES_FILE, entries + [entry])


def record_publication(run_dir: Path, lora_path: Path, checkpoint: Path, *, auto: bool) -> None:
    record_outcome(run_dir, "published", auto=auto, name=Path(lora_path).stem, path=Path(lora_path),
                   checkpoint=Path(checkpoint).name)


def read_outcomes(run_dir: Path) -> RunOutcomes:
    """The run's publications, automatic preview folders and finishing problems."""
    published, previews, problems = [], set(), []
    for entry in _entries(Path(run_dir)):
        kind, auto, when = entry.get("kind"), bool(entry.get("auto")), entry.get("time")
        when = float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) else 0.0
        if kind == "published" and entry.get("name") and entry.get("path"):
            published.append(Publication(str(entry["name"]), Path(str(entry["path"])),
                                         str(entry.get("checkpoint") or ""), auto, when))
        elif kind == "preview" and auto and entry.get("folder"):
            previews.add(str(entry["folder"]))
        elif kind == "problem" and entry.get("message"):
            step = entry.get("step")
            problems.append(f"{step}: {entry['message']}" if step else str(entry["message"]))
    return RunOutcomes(published, frozenset(previews), problems)


def _entries(run_dir: Path) -> list[dict]:
    try:
        data = read_json(run_dir / OUTCOMES_FILE, [])
    except (OSError, ValueError):
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
