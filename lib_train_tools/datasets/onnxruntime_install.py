"""Installing onnxruntime (WD14 taggers run on it) from the Dataset tab, moving no other package.

The install is ``<python> -m pip install --prefer-binary -c <constraints> <package>`` run as a
subprocess, where the constraints file pins every installed distribution to its installed version
(``pip_constraints.installed_pins``, the same pins ``install.py`` writes): pip may only add
onnxruntime and what it needs, so torch, numpy, protobuf... stay exactly as the WebUI pinned them,
and when a package would have to move pip refuses instead. ``INDEX_URL`` is passed on as
``--index-url`` when set, as the WebUI's own ``launch.run_pip`` does.

Which package (``choose_package``), from onnxruntime's CUDA execution provider requirements:

- ``onnxruntime-gpu>=1.19`` only when torch is a CUDA build that sees a GPU, with CUDA major 12 and
  cuDNN major 9. From 1.19 the onnxruntime-gpu wheels on PyPI are built for CUDA 12.x and cuDNN
  9.x (a CUDA 12 build runs on any CUDA 12.x; cuDNN 8 and 9 builds do not mix), and they use the
  CUDA and cuDNN libraries torch brought (PyTorch 2.4 and later ship cuDNN 9). The CUDA 11.8
  builds of 1.19 and later are not on PyPI (only on onnxruntime's own package index), and PyPI's
  older onnxruntime-gpu (1.18 and before) is built for CUDA 11.8 and cuDNN 8.
- ``onnxruntime`` (the CPU build) in every other case: a CPU-only torch, no GPU, CUDA 11 (torch
  2.0 +cu118), or CUDA 12 with cuDNN 8 (A1111 v1.10's torch 2.1.2+cu121). Tagging then runs on
  the CPU, which is slower but gives the same tags.

pip prints no total, so progress is reported in four steps: collecting, downloading, installing,
installed. Afterwards ``importlib.invalidate_caches()`` lets this process import the new package:
no restart is needed. Nothing here imports the WebUI.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from ..pip_constraints import installed_pins

ProgressFn = Callable[[int, int, str], None]

MODULE = "onnxruntime"
CPU_PACKAGE = "onnxruntime"
GPU_PACKAGE = "onnxruntime-gpu>=1.19"
GPU_CUDA_MAJOR = 12   # PyPI's onnxruntime-gpu 1.19+ is built for CUDA 12.x ...
GPU_CUDNN_MAJOR = 9   # ... and cuDNN 9.x
# (the start of a line pip prints, the step it marks)
STEPS: tuple[tuple[str, int], ...] = (
    ("Collecting", 1), ("Downloading", 2), ("Installing collected packages", 3), ("Successfully installed", 4))
TOTAL_STEPS = 4
_TAIL_LINES = 30
_LOCK = threading.Lock()


class InstallBusy(RuntimeError):
    """An install started from the tab is still running."""


@dataclass(frozen=True)
class TorchCuda:
    cuda: str | None      # torch.version.cuda, e.g. "12.1"; None for a CPU-only build
    cudnn: int | None     # torch.backends.cudnn.version(), e.g. 8902 (8.9.2) or 90100 (9.1.0)
    gpu_available: bool   # torch.cuda.is_available()


@dataclass(frozen=True)
class PackageChoice:
    requirement: str   # what pip installs
    reason: str        # why this one, in a few words for the page


@dataclass(frozen=True)
class InstallOutcome:
    succeeded: bool          # pip exited with 0
    importable: bool         # ``import onnxruntime`` works now, in this process
    choice: PackageChoice
    command: tuple[str, ...]
    output_tail: str         # pip's last lines (why it refused, when it did)


def onnxruntime_importable() -> bool:
    """Whether ``import onnxruntime`` would work now (looked up afresh: no import, no stale cache)."""
    importlib.invalidate_caches()
    return importlib.util.find_spec(MODULE) is not None


def torch_cuda() -> TorchCuda:
    """What the running torch was built with (a missing torch counts as CPU-only)."""
    try:
        import torch
    except ImportError:
        return TorchCuda(None, None, False)
    cuda = getattr(torch.version, "cuda", None)
    available = bool(cuda) and bool(torch.cuda.is_available())
    cudnn = None
    if available:
        try:
            cudnn = torch.backends.cudnn.version()
        except (RuntimeError, OSError, AttributeError):  # a broken cuDNN just means: not the GPU package
            cudnn = None
    return TorchCuda(cuda, cudnn, available)


def cudnn_major(version: int) -> int:
    """cuDNN's major version from its number: 9.x counts major*10000 (90100), 8.x major*1000 (8902)."""
    return version // 10000 if version >= 10000 else version // 1000


def choose_package(torch_build: TorchCuda) -> PackageChoice:
    """``onnxruntime-gpu>=1.19`` for torch with CUDA 12 and cuDNN 9 and a GPU, else ``onnxruntime``."""
    if not torch_build.cuda or not torch_build.gpu_available:
        return PackageChoice(CPU_PACKAGE, "torch has no CUDA GPU here, so the CPU build")
    major = _major(torch_build.cuda)
    cudnn = cudnn_major(torch_build.cudnn) if torch_build.cudnn else None
    if major == GPU_CUDA_MAJOR and cudnn == GPU_CUDNN_MAJOR:
        return PackageChoice(GPU_PACKAGE, f"torch has CUDA {torch_build.cuda} and cuDNN {cudnn}, as "
                                          "onnxruntime-gpu 1.19+ from PyPI needs")
    return PackageChoice(CPU_PACKAGE, f"torch has CUDA {torch_build.cuda} with cuDNN {cudnn or 'unknown'}, but "
                                      f"onnxruntime-gpu from PyPI needs CUDA {GPU_CUDA_MAJOR} with cuDNN "
                                      f"{GPU_CUDNN_MAJOR}, so the CPU build")


def pip_argv(python: str, requirement: str, constraints_file: str, index_url: str | None = None) -> list[str]:
    """The pip command line: constrained by ``constraints_file``, the WebUI's ``INDEX_URL`` when set."""
    index = os.environ.get("INDEX_URL", "") if index_url is None else index_url
    argv = [python, "-m", "pip", "install", "--prefer-binary", "-c", constraints_file, requirement]
    return argv + (["--index-url", index] if index else [])


def manual_command(python: str, requirement: str = CPU_PACKAGE) -> str:
    """The plain pip command a person can run by hand instead of the button."""
    return f'"{python}" -m pip install "{requirement}"' if any(c in requirement for c in "<>=") \
        else f'"{python}" -m pip install {requirement}'


def install_onnxruntime(
    python: str,
    progress: ProgressFn | None = None,
    *,
    choice: PackageChoice | None = None,
    popen: Callable[..., Any] = subprocess.Popen,
) -> InstallOutcome:
    """Run the constrained pip install (one at a time) and say how it went; raises ``InstallBusy``
    when one is already running."""
    if not _LOCK.acquire(blocking=False):
        raise InstallBusy("onnxruntime is being installed already; wait for it to finish")
    try:
        choice = choice or choose_package(torch_cuda())
        handle, constraints = tempfile.mkstemp(prefix="train-tools-constraints-", suffix=".txt")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write("\n".join(installed_pins()) + "\n")
            argv = pip_argv(python, choice.requirement, constraints)
            if progress is not None:
                progress(0, TOTAL_STEPS, f"pip install {choice.requirement}")
            code, tail = _run(argv, popen, progress)
        finally:
            os.unlink(constraints)
        importable = onnxruntime_importable()
        if code == 0 and progress is not None:
            progress(TOTAL_STEPS, TOTAL_STEPS, "installed")
        return InstallOutcome(code == 0, importable, choice, tuple(argv), tail)
    finally:
        _LOCK.release()


def _run(argv: Sequence[str], popen: Callable[..., Any], progress: ProgressFn | None) -> tuple[int, str]:
    """pip's exit code and its last lines, reporting a step whenever pip starts a new one."""
    process = popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    encoding="utf-8", errors="replace")
    lines: list[str] = []
    step = 0
    stream: IO[str] = process.stdout
    for raw in stream:
        line = raw.rstrip()
        if not line:
            continue
        lines = (lines + [line])[-_TAIL_LINES:]
        reached = max((n for start, n in STEPS if line.lstrip().startswith(start)), default=0)
        if reached > step:
            step = reached
            if progress is not None and step < TOTAL_STEPS:
                progress(step, TOTAL_STEPS, line.strip()[:120])
    return int(process.wait()), "\n".join(lines)


def _major(version: str) -> int | None:
    head = version.strip().split(".")[0]
    return int(head) if head.isdigit() else None
