"""A completed training run, made once per test session, for the Results tab's tests.

``build_completed_root(root)`` writes what a user has after training once in the tab: a tiny
generated SD1 base model in ``root/checkpoints``, an output folder ``root/output`` with project
``テスト`` / version ``v1`` (4 processed 64 px pictures, activation tag ``mychar``, a sample prompt,
"preview all epochs" on), and one run made exactly as the job queue makes it: the folder,
``config.toml`` and ``job.json`` from the queue's own submission code, the real trainer run
in-process (2 epochs, a LoRA saved after each, a sample image each), the job record marked
completed, then the app's finishing hooks (auto-publish as ``テスト-v1`` into ``output/lora`` and
the epoch grid). Tests copy the prepared folder (``copy_completed_root``) so each one starts from
the same state.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

PROJECT, VERSION = "テスト", "v1"
RUN = f"{PROJECT}-{VERSION}"
ACTIVATION = "mychar"
SAMPLE_PROMPT = "mychar, red square --w 64 --h 64 --s 2 --d 5"
COLOURS = [(220, 40, 40), (40, 200, 60), (30, 60, 220), (240, 220, 30)]


@dataclass(frozen=True)
class CompletedRoot:
    root: Path
    output: Path
    checkpoints: Path
    lora_dir: Path

    @property
    def run_dir(self) -> Path:
        return self.output / "projects" / PROJECT / "versions" / VERSION / "trains" / RUN


def build_completed_root(root: Path) -> CompletedRoot:
    from lib_train_tools.host.standalone import StandaloneHost
    from lib_train_tools.jobs.grid import GridRun
    from lib_train_tools.jobs.progress_state import JobProgress
    from lib_train_tools.jobs.submission import plan_submission
    from lib_train_tools.models.checkpoint_factory import write_checkpoint
    from lib_train_tools.projects import Store, update_settings
    from lib_train_tools.run_hooks import RunHooks
    from lib_train_tools.train.cli import main as train_main

    checkpoints, output = root / "checkpoints", root / "output"
    base = write_checkpoint(checkpoints / "tiny-sd1.safetensors", family="sd1", seed=3)
    store = Store(output)
    store.create_project(PROJECT)
    store.create_version(PROJECT, VERSION)
    version = store.version(PROJECT, VERSION)
    _pictures(version.processed_parent / version.processed_folder_name(1))
    update_settings(version, {"activation_tag": ACTIVATION, "sample_prompt": SAMPLE_PROMPT, "preview_all_epochs": True})
    settings = {"base_model": str(base), "resolution": "64", "max_train_epochs": 2, "network_dim": 4,
                "network_alpha": 4, "learning_rate": 0.05, "seed": 1, "sample_prompt": SAMPLE_PROMPT}
    plan = plan_submission(version, [GridRun(config=settings)], None, None, busy=False)[0]
    job = plan.create("job000000001", time.time(), "default")
    job.status, job.started = "running", time.time()
    job.save()
    with one_thread():
        code = train_main(["--config", str(job.config_file), "--progress_file", str(job.progress_file)])
        assert code == 0, job.log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
        job.status, job.finished, job.exit_code = "completed", time.time(), 0
        job.save()
        host = StandaloneHost(output, checkpoints)
        RunHooks(host, store).after_job(job, JobProgress.from_file(job.progress_file))
    return CompletedRoot(root, output.resolve(), checkpoints.resolve(), host.lora_dir())


def copy_completed_root(prepared: CompletedRoot, target: Path) -> CompletedRoot:
    shutil.copytree(prepared.root, target, symlinks=True)
    return CompletedRoot(target, (target / "output").resolve(), (target / "checkpoints").resolve(),
                         (target / "output" / "lora").resolve())


def _pictures(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate(COLOURS):
        image = Image.new("RGB", (64, 64), colour)
        for x in range(0, 64, 8):
            image.putpixel((x, (x * (i + 1)) % 64), (255, 255, 255))
        image.save(folder / f"{i:02d}.png")
        (folder / f"{i:02d}.txt").write_text(f"{ACTIVATION}, colour {i}", encoding="utf-8")


class one_thread:
    """Tiny models gain nothing from threads; on a busy 2-core machine they only slow down."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc_info):
        torch.set_num_threads(self.threads)


@pytest.fixture(scope="session")
def prepared_root(tmp_path_factory) -> CompletedRoot:
    return build_completed_root(tmp_path_factory.mktemp("completed"))


@pytest.fixture
def completed(prepared_root, tmp_path) -> CompletedRoot:
    """A fresh copy of the prepared output folder, base model and LoRA folder."""
    return copy_completed_root(prepared_root, tmp_path / "copy")


@pytest.fixture
def results_services(completed):
    from lib_train_tools.host.standalone import StandaloneHost
    from lib_train_tools.services import create_services

    host = StandaloneHost(completed.output, completed.checkpoints, completed.lora_dir)
    services = create_services(host, start_queue=False)
    with one_thread():
        yield services
    services.shutdown()
