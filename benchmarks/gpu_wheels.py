"""Prepare the wheels folder that ``benchmarks/gpu_check.py`` installs from on a machine with no internet.

    python benchmarks/gpu_wheels.py                      # -> benchmarks/wheels/ (CPython 3.10 and 3.11)
    python benchmarks/gpu_wheels.py --python 3.12 --dest /tmp/wheels

Run it on a machine that can reach the package index. It downloads, with ``pip download
--only-binary=:all: --no-deps`` for manylinux x86_64, exactly the distributions in ``WHEELS``:
what the trainer, the 8-bit optimizer and pytest need beyond a bare torch install. torch itself is
never downloaded (the GPU machine has its own), nor anything that would pull it in: ``--no-deps``
keeps open_clip_torch from bringing torchvision, timm and huggingface_hub (our tokenizer loads only
its ``tokenizer.py``, which needs ftfy, regex and numpy).

The folder travels to the GPU machine with the work tree, so it is left untracked but NOT
git-ignored; never commit it (93 MiB for 3.10 + 3.11 in December 2026, bitsandbytes 41 MiB of it). Delete it
when done.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "benchmarks" / "wheels"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_24_x86_64", "manylinux_2_28_x86_64")

# distribution -> pip requirement. Import name in gpu_check.REQUIRED_MODULES.
WHEELS = {
    # the trainer (requirements.txt, less torch and the UI)
    "safetensors": "safetensors>=0.4",
    "toml": "toml>=0.10",
    "pillow": "pillow>=9.5",
    "numpy": "numpy",
    "open_clip_torch": "open_clip_torch>=2.20",
    "ftfy": "ftfy",              # open_clip/tokenizer.py
    "wcwidth": "wcwidth",        # ftfy
    "regex": "regex",            # open_clip/tokenizer.py
    "lion-pytorch": "lion-pytorch>=0.1.2",
    "bitsandbytes": "bitsandbytes",  # AdamW8bit
    "packaging": "packaging",    # bitsandbytes, pytest
    # pytest and its dependencies
    "pytest": "pytest>=8",
    "iniconfig": "iniconfig",
    "pluggy": "pluggy",
    "pygments": "pygments",
}
PY310_ONLY = {"exceptiongroup": "exceptiongroup", "tomli": "tomli"}  # pytest on Python < 3.11


def requirements(python: str) -> list[str]:
    """The pip requirements for CPython ``python`` ("3.10")."""
    wanted = dict(WHEELS)
    if tuple(int(p) for p in python.split(".")) < (3, 11):
        wanted.update(PY310_ONLY)
    return list(wanted.values())


def download_command(dest: Path, python: str) -> list[str]:
    abi = "cp" + python.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--dest", str(dest),
           "--python-version", python, "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    return cmd + requirements(python)


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.whl")) / 2**20


def main() -> int:
    p = argparse.ArgumentParser(description="download the wheels gpu_check.py installs offline")
    p.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    p.add_argument("--python", nargs="+", default=["3.10", "3.11"], help="CPython versions of the GPU machine")
    args = p.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    for python in args.python:
        code = subprocess.call(download_command(args.dest, python))
        if code:
            print(f"pip download for Python {python} failed (exit {code})", file=sys.stderr)
            return code
    wheels = sorted(args.dest.glob("*.whl"))
    print(f"{len(wheels)} wheels, {folder_mib(args.dest):.1f} MiB in {args.dest} (untracked: do not commit it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
