"""The "Install onnxruntime" install: which package for which torch, the exact pip command, progress.

pip never runs: ``subprocess.Popen`` is replaced by a fake that records the command line, reads the
constraints file while it "runs" (the file is gone afterwards) and prints what pip would print.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from lib_train_tools.datasets import onnxruntime_install as ort
from lib_train_tools.datasets.onnxruntime_install import (
    CPU_PACKAGE,
    GPU_PACKAGE,
    InstallBusy,
    PackageChoice,
    TorchCuda,
    choose_package,
    cudnn_major,
    install_onnxruntime,
    manual_command,
    pip_argv,
)
from lib_train_tools.pip_constraints import installed_pins

PIP_OUTPUT = """Collecting onnxruntime
  Downloading onnxruntime-1.20.1-cp310-cp310-manylinux_2_27_x86_64.whl (13.3 MB)
Requirement already satisfied: numpy>=1.21.6 in ./venv/lib/python3.10/site-packages (from onnxruntime) (1.26.2)
Collecting flatbuffers
Installing collected packages: flatbuffers, onnxruntime
Successfully installed flatbuffers-24.3.25 onnxruntime-1.20.1
"""
REFUSAL = """Collecting onnxruntime-gpu>=1.19
ERROR: Cannot install onnxruntime-gpu because these package versions have conflicting dependencies.
"""


class FakePip:
    def __init__(self, output: str = PIP_OUTPUT, code: int = 0):
        self.output, self.code = output, code
        self.calls: list[tuple[list[str], dict]] = []
        self.constraints: list[str] = []

    def __call__(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        self.constraints.append(Path(argv[argv.index("-c") + 1]).read_text(encoding="utf-8"))
        pip = self

        class Process:
            stdout = io.StringIO(pip.output)

            def wait(self):
                return pip.code

        return Process()


@pytest.fixture
def no_index(monkeypatch):
    monkeypatch.delenv("INDEX_URL", raising=False)
    monkeypatch.setattr(ort, "installed_pins", lambda: ["numpy==1.26.2", "torch==2.4.1+cu124"])


CUDA12_CUDNN9 = TorchCuda("12.4", 90100, True)


@pytest.mark.parametrize("build, package", [
    (TorchCuda("12.4", 90100, True), GPU_PACKAGE),     # torch 2.4+ cu124: CUDA 12, cuDNN 9
    (TorchCuda("12.1", 8902, True), CPU_PACKAGE),      # A1111 v1.10's torch 2.1.2+cu121: cuDNN 8
    (TorchCuda("11.8", 8700, True), CPU_PACKAGE),      # CUDA 11: not on PyPI for 1.19+
    (TorchCuda("13.0", 91000, True), CPU_PACKAGE),     # newer than the PyPI wheels are built for
    (TorchCuda("12.4", 90100, False), CPU_PACKAGE),    # a CUDA build without a GPU
    (TorchCuda(None, None, False), CPU_PACKAGE),       # torch +cpu
])
def test_the_gpu_package_only_for_cuda_12_with_cudnn_9(build, package):
    assert choose_package(build).requirement == package


def test_the_reason_names_the_versions():
    assert choose_package(CUDA12_CUDNN9).reason == (
        "torch has CUDA 12.4 and cuDNN 9, as onnxruntime-gpu 1.19+ from PyPI needs")
    assert choose_package(TorchCuda("12.1", 8902, True)).reason == (
        "torch has CUDA 12.1 with cuDNN 8, but onnxruntime-gpu from PyPI needs CUDA 12 with cuDNN 9, so the CPU build")
    assert cudnn_major(8902) == 8 and cudnn_major(90100) == 9 and cudnn_major(91000) == 9


def test_pip_command_is_constrained_and_follows_index_url(monkeypatch):
    monkeypatch.delenv("INDEX_URL", raising=False)
    assert pip_argv("/py", "onnxruntime", "/tmp/c.txt") == [
        "/py", "-m", "pip", "install", "--prefer-binary", "-c", "/tmp/c.txt", "onnxruntime"]
    monkeypatch.setenv("INDEX_URL", "https://mirror.example/simple")
    assert pip_argv("/py", GPU_PACKAGE, "/tmp/c.txt")[-3:] == [
        GPU_PACKAGE, "--index-url", "https://mirror.example/simple"]
    assert manual_command("/v env/python") == '"/v env/python" -m pip install onnxruntime'
    assert manual_command("/py", GPU_PACKAGE) == '"/py" -m pip install "onnxruntime-gpu>=1.19"'


@pytest.mark.parametrize("build, package", [(CUDA12_CUDNN9, "onnxruntime-gpu>=1.19"),
                                            (TorchCuda(None, None, False), "onnxruntime")])
def test_install_runs_pip_with_the_pins_and_reports_steps(no_index, monkeypatch, build, package):
    monkeypatch.setattr(ort, "torch_cuda", lambda: build)
    monkeypatch.setattr(ort, "onnxruntime_importable", lambda: True)
    pip, steps = FakePip(), []
    outcome = install_onnxruntime("/venv/bin/python", lambda d, t, n: steps.append((d, t, n)), popen=pip)
    [(argv, kwargs)] = pip.calls
    constraints = argv[6]
    assert argv == ["/venv/bin/python", "-m", "pip", "install", "--prefer-binary", "-c", constraints, package]
    assert pip.constraints == ["numpy==1.26.2\ntorch==2.4.1+cu124\n"]
    assert not Path(constraints).exists()  # removed afterwards
    assert kwargs["stderr"] is ort.subprocess.STDOUT and kwargs["text"] is True
    assert [(d, t) for d, t, _ in steps] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert steps[0][2] == f"pip install {package}" and steps[-1][2] == "installed"
    assert steps[2][2].startswith("Downloading onnxruntime-1.20.1")
    assert outcome.succeeded and outcome.importable and outcome.choice.requirement == package
    assert outcome.command == tuple(argv) and outcome.output_tail.endswith("onnxruntime-1.20.1")


def test_a_refusal_comes_back_with_pips_words(no_index):
    pip = FakePip(REFUSAL, code=1)
    outcome = install_onnxruntime("/py", choice=PackageChoice(GPU_PACKAGE, "test"), popen=pip)
    assert not outcome.succeeded and "conflicting dependencies" in outcome.output_tail
    assert pip.calls[0][0][-1] == GPU_PACKAGE


def test_one_install_at_a_time(no_index):
    started, release = threading.Event(), threading.Event()

    class SlowPip(FakePip):
        def __call__(self, argv, **kwargs):
            started.set()
            release.wait(10)
            return super().__call__(argv, **kwargs)

    worker = threading.Thread(target=install_onnxruntime, args=("/py",),
                              kwargs={"choice": PackageChoice(CPU_PACKAGE, "t"), "popen": SlowPip()})
    worker.start()
    assert started.wait(10)
    with pytest.raises(InstallBusy, match="being installed already"):
        install_onnxruntime("/py", choice=PackageChoice(CPU_PACKAGE, "t"), popen=FakePip())
    release.set()
    worker.join(10)
    assert install_onnxruntime("/py", choice=PackageChoice(CPU_PACKAGE, "t"), popen=FakePip()).succeeded


def test_installed_pins_pin_this_environment():
    pins = installed_pins()
    import numpy

    assert f"numpy=={numpy.__version__}" in pins
    assert all("==" in pin for pin in pins) and pins == sorted(pins, key=str.lower)
