"""The "keep last N checkpoints" setting: delete a run's older intermediate LoRA files.

Only ``<name>-<epoch>.safetensors`` and ``<name>-step<step>.safetensors`` files are candidates, and
each kind keeps its own newest ``keep_last_n`` (highest epoch, highest step). The final
``<name>.safetensors``, the ``<name>-state`` folder, samples, previews and anything of another
name are never touched. ``keep_last_n`` 0 (or less) keeps everything.
"""

from __future__ import annotations

from pathlib import Path

from .runs import LORA_SUFFIX, classify_checkpoint


def prune_checkpoints(run_dir: Path, output_name: str, keep_last_n: int) -> list[Path]:
    """Delete all but the newest ``keep_last_n`` epoch files (and step files); return what was deleted."""
    if keep_last_n <= 0:
        return []
    by_kind: dict[str, list[tuple[int, Path]]] = {"epoch": [], "step": []}
    for path in Path(run_dir).glob(f"*{LORA_SUFFIX}"):
        found = classify_checkpoint(path.name, output_name)
        if found is not None and found[0] in by_kind and path.is_file() and not path.name.startswith("."):
            kind, number = found
            assert number is not None  # only "final" files have no number, and they are not pruned
            by_kind[kind].append((number, path))
    deleted = []
    for files in by_kind.values():
        for _, path in sorted(files, reverse=True)[keep_last_n:]:
            path.unlink(missing_ok=True)
            deleted.append(path)
    return sorted(deleted)
