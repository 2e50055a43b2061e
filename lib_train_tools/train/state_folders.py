"""The trainer's resumable state folders in an output folder, and the newest complete one.

The trainer (``train/saving.py`` ``save_state``) writes ``<name>-state/`` under a temporary name
(``atomic.temporary_sibling``), ``state.pt`` first and ``train_state.json`` last, then swaps it
in: the old folder is renamed to another temporary name, the new one into place, and the old one is
removed. A state is complete when its ``train_state.json`` reads as a JSON object with a step. A
trainer killed during a save can leave the newest complete state under a temporary name (or, from
older versions, as ``<name>-state.tmp`` / ``<name>-state.old``) and an incomplete folder anywhere;
``newest_complete_state`` finds the newest complete one wherever it is. Nothing here imports torch:
the job service and the results listing decide with it whether a run can be resumed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..atomic import temporary_target

STATE_SUFFIX = "-state"  # of the folder ``<output name>-state``
STATE_FILE = "train_state.json"  # written last: its presence marks a complete state
LEGACY_STATE_SUFFIXES = (".tmp", ".old")  # trainers before the .tt-tmp- scheme


def state_info(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The ``train_state.json`` of a complete state folder; None when missing, partial or not a state."""
    try:
        info = json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("step"), int):
        return None
    return info


def state_leftovers(output_dir: str | os.PathLike, name: str) -> list[Path]:
    """Folders a killed save of ``<name>-state`` left in ``output_dir``, complete or not."""
    folder, state = Path(output_dir), f"{name}{STATE_SUFFIX}"
    legacy = {state + suffix for suffix in LEGACY_STATE_SUFFIXES}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.is_dir() and not p.is_symlink()
            and (p.name in legacy or temporary_target(p.name) in (state, state + ".old"))]


def newest_complete_state(output_dir: str | os.PathLike, name: str) -> Path | None:
    """The complete state with the most steps among ``<name>-state`` and the leftovers (ties: the
    regular folder, then the later save); None when there is none."""
    regular = Path(output_dir) / f"{name}{STATE_SUFFIX}"
    best, best_key = None, None
    for folder in [regular] + state_leftovers(output_dir, name):
        info = state_info(folder)
        if info is None:
            continue
        saved_at = info.get("saved_at")
        key = (info["step"], folder == regular, saved_at if isinstance(saved_at, (int, float)) else 0.0)
        if best_key is None or key > best_key:
            best, best_key = folder, key
    return best
