"""The run's outcome record: publications, automatic previews and problems, written by two threads at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lib_train_tools.results.outcomes import OUTCOMES_FILE, read_outcomes, record_outcome, record_publication


def test_entries_read_back_by_kind(tmp_path: Path):
    record_publication(tmp_path, tmp_path / "lora" / "name.safetensors", tmp_path / "run-000001.safetensors", auto=True)
    record_outcome(tmp_path, "preview", auto=True, folder="20240101-000000")
    record_outcome(tmp_path, "preview", auto=False, folder="20240101-000001")
    record_outcome(tmp_path, "problem", auto=True, step="prune", message="disk full")
    outcomes = read_outcomes(tmp_path)
    assert [(p.name, p.checkpoint, p.auto) for p in outcomes.published] == [("name", "run-000001.safetensors", True)]
    assert outcomes.published[0].path == tmp_path / "lora" / "name.safetensors"
    assert outcomes.auto_previews == {"20240101-000000"}
    assert outcomes.problems == ["prune: disk full"]


def test_damaged_or_missing_record_reads_empty_and_unknown_kinds_are_refused(tmp_path: Path):
    assert read_outcomes(tmp_path).published == []
    (tmp_path / OUTCOMES_FILE).write_text("{not json", encoding="utf-8")
    assert read_outcomes(tmp_path).problems == []
    with pytest.raises(ValueError, match="not one of"):
        record_outcome(tmp_path, "celebrated", auto=False)


def test_two_writers_lose_nothing(tmp_path: Path):
    def write(prefix: str) -> None:
        for i in range(20):
            record_outcome(tmp_path, "problem", auto=False, message=f"{prefix}{i}")

    threads = [threading.Thread(target=write, args=(p,)) for p in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(read_outcomes(tmp_path).problems) == sorted(f"{p}{i}" for p in "ab" for i in range(20))
