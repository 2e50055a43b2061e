"""benchmarks/gpu_check.py: its CPU dry run (the same steps as on a GPU, tiny models) and its wheel list."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402
import gpu_wheels  # noqa: E402

FIGURES = ("s_per_it", "floor_s", "ratio_to_floor", "first_step_s", "peak_rss_mib", "wall_s")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("gpu_check")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    return done, out


def test_dry_run_reports_every_planned_case_with_positive_figures(dry_run):
    done, out = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))
    assert report["mode"] == "dry-run" and "error" not in report
    assert [c["name"] for c in report["cases"]] == [c.name for c in gpu_check.CASES]
    for case in report["cases"]:
        if case["status"] == "skipped":
            assert case["name"] == "sdxl_adamw8bit" and "bitsandbytes" in case["reason"]
            continue
        assert case["status"] == "ok", case
        assert all(case[key] > 0 for key in FIGURES), case
        assert case["steps"] == gpu_check.DRY.steps[case["family"]]
        assert math.isfinite(case["final_loss"])
        assert case["floor"]["status"] == "ok" and case["floor"]["dtype"] == "float32"  # the CPU trains in fp32
        assert case["peak_allocated_mib"] is None and case["peak_reserved_mib"] is None  # no CUDA counters here
        assert (out / "logs" / f"{case['name']}.log").is_file()
    eight_bit = next(c for c in report["cases"] if c["name"] == "sdxl_adamw8bit")
    assert eight_bit["status"] == ("ok" if importlib.util.find_spec("bitsandbytes") else "skipped")
    sdxl = next(c for c in report["cases"] if c["name"] == "sdxl_adamw")
    assert sdxl["gradient_checkpointing"] and sdxl["cache_text_encoder_outputs"] and sdxl["dim"] == 16


def test_dry_run_writes_checkpoints_runs_the_cuda_tests_and_explains_kohya(dry_run):
    _, out = dry_run
    report = json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))
    assert set(report["checkpoints"]) == {"sd1", "sdxl"}
    assert all(c["size"] == "tiny" and c["bytes"] > 0 and c["write_s"] > 0 for c in report["checkpoints"].values())
    tests = report["tests"]
    assert "tests/gpu/test_cuda_training.py" in tests["files"]
    assert tests["exit_code"] == 0 and tests["skipped"] > 0 and tests["passed"] == tests["failed"] == 0
    assert report["kohya"]["status"] == "skipped" and report["kohya"]["reason"]
    assert report["dependencies"]["installed"] == [] and report["total_s"] > 0
    table = (out / "gpu_check.md").read_text(encoding="utf-8")
    assert table.startswith("| case |") and all(f"| {c.name} |" in table for c in gpu_check.CASES)


def test_wheels_folder_holds_every_module_the_check_installs():
    wanted = {**gpu_check.REQUIRED_MODULES, **gpu_check.PY310_MODULES, **gpu_check.CUDA_MODULES}
    assert set(wanted.values()) == set(gpu_wheels.WHEELS) | set(gpu_wheels.PY310_ONLY)


@pytest.mark.parametrize("python, extra", [("3.10", True), ("3.11", False)])
def test_wheel_download_is_binary_only_for_that_python_and_never_torch(tmp_path, python, extra):
    cmd = gpu_wheels.download_command(tmp_path, python)
    assert cmd[cmd.index("--python-version") + 1] == python
    assert "--only-binary=:all:" in cmd and "--no-deps" in cmd
    assert f"cp{python.replace('.', '')}" in cmd and "manylinux2014_x86_64" in cmd
    names = [arg.split(">")[0].split("=")[0] for arg in cmd if not arg.startswith("-")]
    assert "torch" not in names and "torchvision" not in names
    assert ("exceptiongroup" in names) is extra and "bitsandbytes" in names and "open_clip_torch" in names


def test_wheel_fits_this_python_and_machine_only(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 11, 4, "final", 0))
    monkeypatch.setattr(gpu_check.platform, "machine", lambda: "x86_64")
    fits = gpu_check.wheel_fits
    assert fits("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl")
    assert not fits("numpy-2.2.6-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert fits("safetensors-0.8.0-cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")  # abi3: 3.10 and up
    assert not fits("safetensors-0.8.0-cp312-abi3-manylinux_2_17_x86_64.whl")
    assert fits("toml-0.10.2-py2.py3-none-any.whl") and fits("bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl")
    assert not fits("bitsandbytes-0.50.2-py3-none-manylinux_2_24_aarch64.whl")
    assert not fits("pillow-13.0.0-cp311-cp311-win_amd64.whl")
