"""One real run through the queue: the tiny generated SD1 model, four images, one epoch at 64 px."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import safe_open

from lib_train_tools.jobs.launcher import TrainerLauncher
from lib_train_tools.jobs.queue import JobQueue
from lib_train_tools.models.checkpoint_factory import write_checkpoint

from .conftest import add_processed_images


@pytest.fixture
def real_queue(store):
    queue = JobQueue(store.root / "jobs", TrainerLauncher(), poll_interval=0.1)
    yield queue
    queue.shutdown(timeout=60)


def test_real_trainer_completes_a_run_through_the_queue(real_queue, store, tmp_path):
    ckpt = write_checkpoint(tmp_path / "tiny-sd1.safetensors", family="sd1", seed=3)
    store.create_project("ねこ")
    store.create_version("ねこ", "v1")
    version = store.version("ねこ", "v1")
    add_processed_images(version, repeats=1, count=4)
    settings = {"base_model": str(ckpt), "resolution": "64", "max_train_epochs": 1, "network_dim": 4,
                "network_alpha": 2, "learning_rate": 1e-3, "seed": 1}
    job = real_queue.submit(version, settings)[0]
    assert job.run_name == "ねこ-v1"
    real_queue.start()
    done = real_queue.wait(job.id, timeout=240)
    assert done.status == "completed", (done.message, real_queue.log_tail(job.id, 60))
    assert done.exit_code == 0
    lora = version.trains / "ねこ-v1" / "ねこ-v1.safetensors"
    assert lora.is_file()
    with safe_open(str(lora), "pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    assert any(k.startswith("lora_unet_") for k in keys) and meta["ss_output_name"] == "ねこ-v1"
    progress = real_queue.progress(job.id)
    assert progress.done_status == "completed" and progress.step == progress.total_steps == 4
    assert [Path(c.path) for c in progress.checkpoints] == [lora]
    assert progress.architecture == "sd1" and len(progress.losses) == 4
