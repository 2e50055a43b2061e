"""What the WebUI's console must not say during a check, and what the adapter must say."""

from __future__ import annotations

import re
from pathlib import Path

try:
    from .webui_client import CheckFailed
except ImportError:
    from webui_client import CheckFailed

# Lines the WebUIs' Lora code prints when a LoRA does not load or apply cleanly (A1111
# extensions-builtin/Lora, Forge extensions-builtin/sd_forge_lora and backend/patcher/lora.py).
LORA_PROBLEMS = [
    r"didn't match keys", r"Networks with errors", r"Lora not found", r"Couldn't find network",
    r"with unmatched keys", r"\[LORA\] Mismatch", r"skipped [1-9]\d* keys", r"SHAPE MISMATCH",
    r"WEIGHT NOT MERGED", r"^ERROR lora", r"Error loading network|loading network .* failed",
    r"Traceback \(most recent call last\)",
]


def check_unload_messages(log: Path | None, offset: int, host: str) -> str:
    """With the unload setting on, the adapter says in the console what it did around the job
    (A1111: moved to RAM and back, also across a Reload UI; Forge: unloaded, reloads by itself)."""
    if log is None:
        return "no --log given: unload messages not checked"
    text = log.read_bytes()[offset:].decode("utf-8", "replace")
    said = [line.strip() for line in text.splitlines() if line.startswith("[Train Tools]")
            and ("checkpoint" in line or "models from VRAM" in line)]
    if not said:
        raise CheckFailed("the unload setting was on but the console shows no unload message")
    if host == "a1111" and not any("back" in line for line in said):
        raise CheckFailed(f"A1111's checkpoint was not moved back after the job: {said}")
    return " / ".join(said)


def check_log(log: Path | None, offset: int) -> list[str]:
    if log is None:
        return ["no --log given: console not checked"]
    lines = log.read_bytes()[offset:].decode("utf-8", "replace").splitlines()
    problems, nan_tracebacks = [], 0
    for number, line in enumerate(lines):
        if not any(re.search(p, line) for p in LORA_PROBLEMS):
            continue
        if "Traceback" in line and _raises_nans(lines[number + 1:]):
            nan_tracebacks += 1     # A1111's NaN check on the random-weight checkpoint, not a LoRA error
            continue
        problems.append(line)
    if problems:
        raise CheckFailed("the WebUI's log has problem lines:\n    " + "\n    ".join(problems[:20]))
    loaded = [line.strip() for line in lines if "[LORA] Loaded" in line]
    nans = f" ({nan_tracebacks} NansException tracebacks of refused all-NaN images)" if nan_tracebacks else ""
    return [f"log: no LoRA problem line, no other traceback in {len(lines)} lines{nans}"] + loaded[:4]


def _raises_nans(following: list[str]) -> bool:
    """Whether the traceback these lines continue (a chained one included, up to the next log
    record) is the WebUI's NansException."""
    for line in following[:400]:
        if re.match(r"^(INFO:|\*\*\* |---|\d{4}-\d\d-\d\d )", line):
            return False
        if "NansException" in line:
            return True
    return False
