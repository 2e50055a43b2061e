"""Tests for listing the runs of a version from their folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lib_train_tools.projects.layout import VersionPaths
from lib_train_tools.results.runs import classify_checkpoint, list_runs, read_run
from lib_train_tools.train.protocol import ErrorEvent, ProgressWriter, StartEvent

from .conftest import OUTPUT_NAME, write_run


def _version(tmp_path: Path) -> VersionPaths:
    return VersionPaths(tmp_path / "v1", "project", "v1", "id1", tmp_path / "v1.lock")


def test_run_listing_with_checkpoints_settings_and_samples(tmp_path, lora_factory, base_model) -> None:
    version = _version(tmp_path)
    write_run(version.trains / "old", lora_factory, base_model, job={"status": "completed", "created": 10.0})
    run_dir = write_run(version.trains / "new", lora_factory, base_model,
                        job={"status": "completed", "created": 20.0, "grid_values": {"network_dim": 4}})
    (run_dir / f".{OUTPUT_NAME}-000003.safetensors.123.tmp").write_bytes(b"half")   # a save in progress
    _state(run_dir / f"{OUTPUT_NAME}-state", step=8)
    runs = list_runs(version)
    assert [r.name for r in runs] == ["new", "old"]
    run = runs[0]
    assert run.status == "completed" and run.output_name == OUTPUT_NAME and run.problems == ()
    assert run.settings["network_dim"] == 4 and run.settings["learning_rate"] == 0.001
    assert run.settings["pretrained_model_name_or_path"] == str(base_model)   # lifted out of its table
    assert run.job["grid_values"] == {"network_dim": 4}
    assert [(c.kind, c.epoch, c.step) for c in run.checkpoints] == [("epoch", 1, 4), ("epoch", 2, 8)]
    for checkpoint in run.checkpoints:
        assert checkpoint.size == checkpoint.path.stat().st_size > 0
        assert checkpoint.mtime == checkpoint.path.stat().st_mtime
        assert checkpoint.lora.sd_version == "SD1" and checkpoint.lora.network_dim == 4
        assert checkpoint.lora.top_tags[0] == ("red", 5)
    assert run.final.path.name == f"{OUTPUT_NAME}.safetensors" and (run.final.epoch, run.final.step) == (2, 8)
    assert [c.kind for c in run.all_checkpoints] == ["epoch", "epoch", "final"]
    assert [p.parent.name for p in run.samples] == ["sample"]
    assert run.state_dir == run_dir / f"{OUTPUT_NAME}-state"
    assert run.progress.architecture == "sd1" and run.progress.total_steps == 8 and run.progress.last_step == 8


def test_a_real_trainer_run_is_read(trained_run) -> None:
    run = read_run(trained_run)
    assert run.status == "completed" and run.output_name == OUTPUT_NAME and run.problems == ()
    assert [(c.kind, c.epoch, c.step) for c in run.all_checkpoints] == [("epoch", 1, 4), ("final", 2, 8)]
    assert all(c.lora.sd_version == "SD1" and c.lora.network_dim == 4 for c in run.all_checkpoints)
    assert run.final.lora.top_tags[0] == ("demo", 2)
    assert run.progress.architecture == "sd1" and run.progress.done_status == "completed"


def test_status_without_job_file(tmp_path, lora_factory, base_model) -> None:
    trains = tmp_path / "trains"
    assert read_run(write_run(trains / "done", lora_factory, base_model)).status == "completed"
    assert read_run(write_run(trains / "stopped", lora_factory, base_model, done="cancelled")).status == "cancelled"
    running = read_run(write_run(trains / "running", lora_factory, base_model, done=None, epochs=1))
    assert running.status == "incomplete" and running.final is None
    failed = trains / "failed"
    failed.mkdir()
    with ProgressWriter(failed / "progress.jsonl") as progress:
        progress.write(StartEvent(architecture="sd1", total_steps=4))
        progress.write(ErrorEvent(kind="out_of_memory", message="CUDA out of memory", hint="batch size 1"))
    run = read_run(failed)
    assert run.status == "failed" and run.progress.error.message == "CUDA out of memory"
    assert read_run(_empty(trains / "empty")).status == "unknown"


def test_hand_made_folder_and_damaged_files(tmp_path, lora_factory) -> None:
    folder = tmp_path / "by-hand"
    folder.mkdir()
    lora_factory(folder / "mine-000002.safetensors", seed=1, epoch=2, steps=20)
    lora_factory(folder / "mine.safetensors", seed=1, epoch=3, steps=30)
    (folder / "broken-000001.safetensors").write_bytes(b"\0" * 3)
    (folder / "job.json").write_text("{not json", encoding="utf-8")
    (folder / "progress.jsonl").write_text("Traceback (most recent call last):\n{\"type\": 5}\n", encoding="utf-8")
    run = read_run(folder)
    assert run.output_name == "mine" and run.status == "completed"      # guessed from the file names
    assert [(c.kind, c.epoch, c.step) for c in run.all_checkpoints] == [("epoch", 2, 20), ("final", 3, 30)]
    assert any("job.json" in p for p in run.problems)


def test_damaged_lora_header_is_listed_as_a_problem(tmp_path, lora_factory, base_model) -> None:
    run_dir = write_run(tmp_path / "run", lora_factory, base_model)
    (run_dir / f"{OUTPUT_NAME}-000003.safetensors").write_bytes(b"\0" * 3)
    run = read_run(run_dir)
    broken = run.checkpoints[-1]
    assert broken.epoch == 3 and broken.lora is None
    assert run.problems == (f"{OUTPUT_NAME}-000003.safetensors: header unreadable",)


def test_checkpoint_names() -> None:
    assert classify_checkpoint("tiny-000012.safetensors", "tiny") == ("epoch", 12)
    assert classify_checkpoint("tiny-step00000300.safetensors", "tiny") == ("step", 300)
    assert classify_checkpoint("tiny.safetensors", "tiny") == ("final", None)
    assert classify_checkpoint("tiny2.safetensors", "tiny") is None
    assert classify_checkpoint("tiny-000012.safetensors.tmp", "tiny") is None
    assert classify_checkpoint("a-b-000001.safetensors", "a-b") == ("epoch", 1)


def test_missing_trains_folder_and_created_order(tmp_path) -> None:
    assert list_runs(_version(tmp_path)) == []
    trains = tmp_path / "trains"
    first, second = _empty(trains / "b"), _empty(trains / "a")
    os.utime(first, (100, 100))
    os.utime(second, (200, 200))
    (trains / ".hidden").mkdir()
    from lib_train_tools.results.runs import list_runs_in
    assert [r.name for r in list_runs_in(trains)] == ["a", "b"]


def test_state_dir_is_the_newest_complete_state(tmp_path, lora_factory, base_model) -> None:
    """As the queue decides: an incomplete newest folder falls back to the earlier complete one."""
    from lib_train_tools.atomic import temporary_sibling

    run_dir = write_run(tmp_path / "run", lora_factory, base_model, job={"status": "interrupted"})
    regular = run_dir / f"{OUTPUT_NAME}-state"
    regular.mkdir()
    (regular / "state.pt").write_bytes(b"half")           # killed before train_state.json was written
    assert read_run(run_dir).state_dir is None
    earlier = _state(temporary_sibling(regular), step=4)   # the complete state a killed swap left aside
    assert read_run(run_dir).state_dir == earlier
    _state(regular, step=8)                                # a later save that completed
    assert read_run(run_dir).state_dir == regular
    (regular / "train_state.json").write_text("{not json", encoding="utf-8")
    assert read_run(run_dir).state_dir == earlier


def _state(folder: Path, step: int) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "state.pt").write_bytes(b"state")
    (folder / "train_state.json").write_text(json.dumps({"step": step, "saved_at": float(step)}), encoding="utf-8")
    return folder


def _empty(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder
