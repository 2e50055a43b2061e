"""Names of training runs: ``<project>-<version>`` plus the grid suffix, unique within a version.

The run name is the run folder's name and the trainer's ``output_name``, so every run and epoch
has its own LoRA file name (Forge caches LoRAs by name). A taken name gets ``-2``, ``-3``, ...
Names are kept short enough in UTF-8 bytes that the longest file the trainer writes
(``<name>-step00000001.safetensors``) still fits the usual 255-byte limit of one path component.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import Path

MAX_RUN_NAME_BYTES = 200


def base_run_name(project: str, version: str) -> str:
    return unicodedata.normalize("NFC", f"{project}-{version}")


def fit_run_name(base: str, suffix: str, room: int = len("-999")) -> str:
    """``base + suffix``, the base shortened (whole characters) when the name would be too long."""
    limit = MAX_RUN_NAME_BYTES - len(suffix.encode("utf-8")) - room
    while base and len(base.encode("utf-8")) > limit:
        base = base[:-1]
    base = base.rstrip(" .-") or "run"
    return base + suffix


def free_run_name(trains: Path, wanted: str, taken: Iterable[str] = ()) -> str:
    """``wanted`` or the first ``wanted-N`` (N = 2, 3, ...) that is neither a folder nor in ``taken``."""
    used = {name.casefold() for name in taken}
    candidate, number = wanted, 1
    while candidate.casefold() in used or (trains / candidate).exists():
        number += 1
        candidate = f"{wanted}-{number}"
    return candidate
