"""Run names: unique within a version, short enough for the trainer's longest file name."""

from __future__ import annotations

from lib_train_tools.jobs.run_names import MAX_RUN_NAME_BYTES, base_run_name, fit_run_name, free_run_name


def test_free_names_count_up(tmp_path):
    assert free_run_name(tmp_path, "p-v") == "p-v"
    (tmp_path / "p-v").mkdir()
    (tmp_path / "p-v-2").mkdir()
    assert free_run_name(tmp_path, "p-v") == "p-v-3"
    assert free_run_name(tmp_path, "p-v", taken=["P-V-3"]) == "p-v-4"


def test_long_japanese_names_are_shortened_to_fit(tmp_path):
    base = base_run_name("猫" * 80, "版" * 80)
    name = fit_run_name(base, "-lr-0_0001")
    assert name.endswith("-lr-0_0001") and name.startswith("猫" * 10)
    assert len((name + "-999-step00000001.safetensors").encode("utf-8")) <= 255
    assert len(name.encode("utf-8")) <= MAX_RUN_NAME_BYTES
    (tmp_path / name).mkdir()
    (tmp_path / (name + "-step00000001.safetensors")).write_bytes(b"")  # the OS accepts it


def test_short_names_are_kept():
    assert fit_run_name("proj-v1", "") == "proj-v1"
