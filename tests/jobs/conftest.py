"""Fixtures for the job tests: a version with a processed dataset, a fake trainer, a queue factory."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from lib_train_tools.jobs.launcher import TrainerLauncher
from lib_train_tools.jobs.queue import JobQueue
from lib_train_tools.projects import Store

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")
COLOURS = [(220, 40, 40), (40, 200, 60), (30, 60, 220), (240, 220, 30)]
DEADLINE_S = 60.0


def wait_until(condition: Callable[[], object], timeout: float = DEADLINE_S, what: str = "condition") -> object:
    """Poll ``condition`` until it is truthy; fail after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def add_processed_images(version, repeats: int = 1, count: int = 4, size: int = 64) -> Path:
    """``count`` small distinct PNGs with .txt captions in ``processed/<repeats>_<project>/``."""
    folder = version.processed_parent / version.processed_folder_name(repeats)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = Image.new("RGB", (size, size), COLOURS[i % len(COLOURS)])
        for x in range(0, size, 8):
            image.putpixel((x, (x * (i + 1)) % size), (255, 255, 255))
        image.save(folder / f"{i:02d}.png")
        (folder / f"{i:02d}.txt").write_text(f"demo, colour {i}", encoding="utf-8")
    return folder


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "out")


@pytest.fixture
def version(store):
    store.create_project("proj")
    store.create_version("proj", "v1")
    paths = store.version("proj", "v1")
    add_processed_images(paths, repeats=2, count=2)
    return paths


@pytest.fixture
def base_model(tmp_path) -> Path:
    """A file standing in for a checkpoint (the fake trainer never opens it)."""
    path = tmp_path / "models" / "base.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not read by the fake trainer")
    return path


@pytest.fixture
def fake_launcher() -> TrainerLauncher:
    return TrainerLauncher(python=sys.executable, entry=(str(FAKE_TRAINER),))


@pytest.fixture
def make_queue(store, fake_launcher):
    """Queues on ``<store>/jobs`` with the fake trainer; every one is shut down after the test."""
    made: list[JobQueue] = []

    def make(**kwargs) -> JobQueue:
        kwargs.setdefault("launcher", fake_launcher)
        kwargs.setdefault("poll_interval", 0.05)
        queue = JobQueue(store.root / "jobs", **kwargs)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.shutdown(stop_running=True, timeout=20)
        for handle in list(queue.handles.values()):
            handle.kill()
