"""Shared fixtures for the results tests: a tiny SD1 base model, LoRA files with non-zero weights,
and run folders laid out as the job service and the trainer write them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from lib_train_tools.models.checkpoint_factory import write_checkpoint
from lib_train_tools.models.loader import load_checkpoint
from lib_train_tools.network import create_network, save_lora
from lib_train_tools.train.cli import main as train_main
from lib_train_tools.train.config_toml import dumps_tables
from lib_train_tools.train.protocol import (
    CheckpointEvent, DoneEvent, EpochEvent, ProgressWriter, SampleEvent, StartEvent, StepEvent,
)

OUTPUT_NAME = "tiny"
TAGS = {"2_demo": {"demo": 4, "red": 2, "cube": 1}, "1_extra": {"red": 3}}


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """Tiny models gain nothing from threads, and on a shared, busy machine two threads spinning
    against other processes make each render several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def base_model(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("base") / "tiny-sd1.safetensors", family="sd1", seed=3)


@pytest.fixture(scope="session")
def lora_factory(base_model, tmp_path_factory):
    """``make(path, seed, epoch, steps)`` writes a kohya LoRA for the tiny SD1 model whose every
    adapter has non-zero weights (``seed`` picks them)."""
    models = load_checkpoint(base_model)

    def make(path: Path, seed: int, epoch: int = 1, steps: int = 8, scale: float = 0.3,
             extra_metadata: dict | None = None) -> Path:
        network = create_network(models.unet, models.text_encoders, "sd1", 4, 2.0)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in network.parameters():
                param.copy_(scale * torch.randn(param.shape, generator=generator))
        metadata = {"ss_base_model_version": "sd_v1", "ss_v2": "False", "ss_network_dim": "4",
                    "ss_network_alpha": "2.0", "ss_epoch": str(epoch), "ss_steps": str(steps),
                    "ss_output_name": OUTPUT_NAME, "ss_tag_frequency": json.dumps(TAGS),
                    "modelspec.architecture": "stable-diffusion-v1/lora", **(extra_metadata or {})}
        return save_lora(path, network, metadata, dtype=torch.float32)

    return make


@pytest.fixture(scope="session")
def lora_files(lora_factory, tmp_path_factory) -> dict[str, Path]:
    """Two different LoRAs, written once for the session."""
    folder = tmp_path_factory.mktemp("loras")
    return {"a": lora_factory(folder / "a.safetensors", seed=11), "b": lora_factory(folder / "b.safetensors", seed=12)}


@pytest.fixture(scope="session")
def trained_run(base_model, tmp_path_factory) -> Path:
    """A real trainer run on the tiny model: 2 epochs of 2 images, a LoRA saved after each epoch
    (``tiny-000001`` and the final ``tiny``). The learning rate is high so that the few steps
    change the pictures."""
    root = tmp_path_factory.mktemp("trained")
    images = root / "img" / "2_demo"
    images.mkdir(parents=True)
    for index, colour in enumerate([(220, 40, 40), (30, 60, 220)]):
        Image.new("RGB", (64, 64), colour).save(images / f"{index}.png")
        (images / f"{index}.txt").write_text(f"demo, colour {index}", encoding="utf-8")
    out = root / "run"
    options = {"pretrained_model_name_or_path": base_model, "train_data_dir": root / "img", "output_dir": out,
               "output_name": OUTPUT_NAME, "resolution": 64, "network_dim": 4, "network_alpha": 4,
               "learning_rate": 0.05, "max_train_epochs": 2, "save_every_n_epochs": 1, "seed": 7,
               "progress_file": out / "progress.jsonl"}
    threads = torch.get_num_threads()   # session fixtures start before the autouse one above
    torch.set_num_threads(1)
    try:
        assert train_main([item for key, value in options.items() for item in (f"--{key}", str(value))]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def write_run(run_dir: Path, make_lora, base_model: Path, *, job: dict | None = None,
              done: str | None = "completed", epochs: int = 2) -> Path:
    """A run folder as the job service leaves it: config.toml, progress.jsonl, epoch files (epoch n
    has the weights of seed 11 + (n - 1) % 2, as LoRA "a" / "b"), the final file (``done`` set),
    a sample image and (when given) job.json."""
    run_dir.mkdir(parents=True)
    options = {"pretrained_model_name_or_path": str(base_model), "output_dir": str(run_dir),
               "output_name": OUTPUT_NAME, "network_dim": 4, "network_alpha": 2.0, "learning_rate": 0.001,
               "max_train_epochs": epochs, "clip_skip": 1}
    model = {"pretrained_model_name_or_path": options.pop("pretrained_model_name_or_path")}
    (run_dir / "config.toml").write_text(dumps_tables({"model_arguments": model, "training_arguments": options}),
                                         encoding="utf-8")
    with ProgressWriter(run_dir / "progress.jsonl") as progress:
        progress.write(StartEvent(config={}, architecture="sd1", total_steps=4 * epochs, total_epochs=epochs,
                                  steps_per_epoch=4, device="cpu", time=1000.0))
        for epoch in range(1, epochs + 1):
            progress.write(StepEvent(step=4 * epoch, total_steps=4 * epochs, epoch=epoch, loss=0.1))
            path = make_lora(run_dir / f"{OUTPUT_NAME}-{epoch:06d}.safetensors", seed=11 + (epoch - 1) % 2,
                             epoch=epoch, steps=4 * epoch)
            progress.write(CheckpointEvent(path=str(path), step=4 * epoch, epoch=epoch))
            progress.write(EpochEvent(epoch=epoch, total_epochs=epochs))
        if done:
            final = make_lora(run_dir / f"{OUTPUT_NAME}.safetensors", seed=11 + (epochs - 1) % 2,
                              epoch=epochs, steps=4 * epochs)
            sample = run_dir / "sample" / f"{OUTPUT_NAME}_e{epochs:06d}_00_20240101000000_1.png"
            sample.parent.mkdir()
            Image.new("RGB", (64, 64), (200, 30, 30)).save(sample)
            progress.write(SampleEvent(path=str(sample), step=4 * epochs, epoch=epochs, prompt="demo"))
            progress.write(DoneEvent(status=done, path=str(final), step=4 * epochs, time=2000.0))
    if job is not None:
        (run_dir / "job.json").write_text(json.dumps(job), encoding="utf-8")
    return run_dir
