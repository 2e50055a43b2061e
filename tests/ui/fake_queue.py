"""Services with a job queue that runs the jobs tests' fake trainer (no torch, no model), for the
progress panel's handler tests (``conftest.py`` makes ``queue_services`` a fixture of tests/ui)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lib_train_tools.host.standalone import StandaloneHost
from lib_train_tools.jobs.launcher import TrainerLauncher
from lib_train_tools.jobs.queue import JobQueue
from lib_train_tools.projects import update_settings
from lib_train_tools.services import Services
from lib_train_tools.ui.selection import selection_key

from ..jobs.conftest import add_processed_images, wait_until

FAKE_TRAINER = Path(__file__).resolve().parents[1] / "jobs" / "fake_trainer.py"
BASE_MODEL = "base.safetensors"
SELECTION = selection_key("テスト", "v1")
__all__ = ["BASE_MODEL", "SELECTION", "queue_services", "restart", "trainable", "wait_until"]


def _queue(root: Path) -> JobQueue:
    launcher = TrainerLauncher(python=sys.executable, entry=(str(FAKE_TRAINER),))
    return JobQueue(root / "jobs", launcher, poll_interval=0.05)


@pytest.fixture
def queue_services(tmp_path):
    """Services whose queue is not started yet (jobs stay queued until a test calls ``start()``)."""
    host = StandaloneHost(tmp_path / "out", tmp_path / "checkpoints")
    (tmp_path / "checkpoints").mkdir(parents=True, exist_ok=True)
    (tmp_path / "checkpoints" / BASE_MODEL).write_bytes(b"not read by the fake trainer")
    from lib_train_tools.projects import Store

    services = Services(host, Store(tmp_path / "out"), _queue(tmp_path / "out"))
    made = [services]
    services.restarts = made  # queues made by restart(), shut down with this one
    yield services
    for each in made:
        each.queue.shutdown(stop_running=True, timeout=20)
        for handle in list(each.queue.handles.values()):
            handle.kill()


def restart(services) -> Services:
    """The same output folder opened by a new queue, as after an app restart."""
    again = Services(services.host, services.store, _queue(Path(services.store.root)))
    services.restarts.append(again)
    return again


def trainable(services, comment: str = "steps=2;delay=0.01", **settings) -> str:
    """Version テスト/v1 with two processed images and settings for the fake trainer; its selection key."""
    if "テスト" not in [p.name for p in services.store.list_projects()]:
        services.store.create_project("テスト")
        services.store.create_version("テスト", "v1")
        add_processed_images(services.store.version("テスト", "v1"), repeats=2, count=2)
    update_settings(services.store.version("テスト", "v1"),
                    {"base_model": BASE_MODEL, "training_comment": comment, **settings})
    return SELECTION
