"""End-to-end runs of ``python -m lib_train_tools.train`` on tiny generated checkpoints (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from lib_train_tools.models.checkpoint_factory import write_checkpoint
from lib_train_tools.train.cli import EXIT_CODES, main
from lib_train_tools.train.protocol import parse_event

ROOT = Path(__file__).resolve().parents[2]
COLOURS = [(220, 40, 40), (40, 200, 60), (30, 60, 220), (240, 220, 30)]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("base") / "tiny-sd1.safetensors", family="sd1", seed=3)


def make_dataset(root: Path, count: int = 4, folder: str = "2_demo", size: int = 64) -> Path:
    img_dir = root / "img" / folder
    img_dir.mkdir(parents=True)
    for i in range(count):
        image = Image.new("RGB", (size, size), COLOURS[i % len(COLOURS)])
        for x in range(0, size, 8):  # a little structure so latents differ inside an image
            image.putpixel((x, (x * (i + 1)) % size), (255, 255, 255))
        image.save(img_dir / f"{i:02d}.png")
        (img_dir / f"{i:02d}.txt").write_text(f"demo, colour {i}", encoding="utf-8")
    return root / "img"


def run_args(ckpt: Path, data: Path, out: Path, **overrides) -> list[str]:
    options = {"pretrained_model_name_or_path": ckpt, "train_data_dir": data, "output_dir": out,
               "output_name": "tiny", "resolution": "64", "network_dim": 4, "network_alpha": 2,
               "learning_rate": 1e-3, "max_train_steps": 4, "seed": 7, "progress_file": out / "progress.jsonl"}
    options.update(overrides)
    args = []
    for key, value in options.items():
        if value is True:
            args.append(f"--{key}")
        elif value is not None:
            args += [f"--{key}", str(value)]
    return args


def events(out: Path) -> list:
    lines = (out / "progress.jsonl").read_text(encoding="utf-8").splitlines()
    return [parse_event(line) for line in lines]


def test_run_writes_kohya_lora_and_progress(tiny_ckpt, tmp_path):
    data, out = make_dataset(tmp_path), tmp_path / "out"
    code = main(run_args(tiny_ckpt, data, out, save_every_n_epochs=1, max_train_steps=None, max_train_epochs=2))
    assert code == 0
    kinds = [e.type for e in events(out)]
    assert kinds[0] == "start" and kinds[-1] == "done"
    done = events(out)[-1]
    assert done.status == "completed" and done.step == 16  # 4 images x 2 repeats, batch 1, 2 epochs
    assert (out / "tiny-000001.safetensors").is_file() and (out / "tiny.safetensors").is_file()
    tensors = load_file(str(out / "tiny.safetensors"))
    assert len([k for k in tensors if k.endswith("lora_down.weight")]) == 192 + 72
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in tensors)
    assert any(v.abs().sum() > 0 for k, v in tensors.items() if k.endswith("lora_up.weight"))
    with safe_open(str(out / "tiny.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["ss_network_dim"] == "4" and meta["ss_base_model_version"] == "sd_v1"
    assert json.loads(meta["ss_tag_frequency"])["2_demo"]["demo"] == 4


def test_each_warning_is_reported_once(tiny_ckpt, tmp_path):
    data, out = make_dataset(tmp_path), tmp_path / "out"
    assert main(run_args(tiny_ckpt, data, out, max_train_steps=1, max_data_loader_n_workers=4)) == 0
    warnings = [e.message for e in events(out) if e.type == "warning"]
    assert len([w for w in warnings if "max_data_loader_n_workers" in w]) == 1, warnings
    assert len(warnings) == len(set(warnings))


def test_loss_goes_down_on_four_images(tiny_ckpt, tmp_path):
    data, out = make_dataset(tmp_path, folder="1_demo"), tmp_path / "out"
    code = main(run_args(tiny_ckpt, data, out, max_train_steps=200, learning_rate=3e-3, network_dim=8,
                         cache_latents=True, network_train_unet_only=True, cache_text_encoder_outputs=True,
                         min_timestep=0, max_timestep=1000))
    assert code == 0
    losses = [e.loss for e in events(out) if e.type == "step"]
    assert len(losses) == 200
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.8 * first, (first, last)


def _lora_tensors(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in load_file(str(path)).items()}


@pytest.fixture
def one_thread():
    """Run torch on one CPU thread: with several, CPU kernels split reductions differently from call
    to call, so even two identical uninterrupted runs differ by ~1e-5 (measured on a 2-core machine),
    which would hide what the resume test compares."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _StopAfter:
    """A stop flag that asks the loop to stop after ``n`` steps (what SIGTERM does, deterministically)."""

    def __init__(self, n: int):
        self.n, self.reads = n, 0

    @property
    def requested(self) -> bool:
        self.reads += 1
        return self.reads >= self.n


@pytest.mark.parametrize("stop_after", [5, 8])  # mid-epoch, and exactly at the end of epoch 1
def test_resume_ends_with_the_same_weights(tiny_ckpt, tmp_path, monkeypatch, stop_after, one_thread):
    data = make_dataset(tmp_path)
    straight, split, resumed = tmp_path / "straight", tmp_path / "split", tmp_path / "resumed"
    common = dict(max_train_steps=None, max_train_epochs=2, save_precision="float", network_dropout=0.1)
    assert main(run_args(tiny_ckpt, data, straight, **common)) == 0
    import lib_train_tools.train.cli as cli
    monkeypatch.setattr(cli, "StopFlag", lambda: _StopAfter(stop_after))
    assert main(run_args(tiny_ckpt, data, split, **common)) == 0
    assert events(split)[-1].status == "cancelled" and events(split)[-1].step == stop_after
    monkeypatch.undo()
    assert main(run_args(tiny_ckpt, data, resumed, resume=split / "tiny-state", **common)) == 0
    assert events(resumed)[-1].step == 16
    a, b = _lora_tensors(straight / "tiny.safetensors"), _lora_tensors(resumed / "tiny.safetensors")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


def test_sigterm_saves_and_reports_cancelled(tiny_ckpt, tmp_path):
    data, out = make_dataset(tmp_path), tmp_path / "out"
    out.mkdir()
    args = run_args(tiny_ckpt, data, out, max_train_steps=10_000)
    proc = subprocess.Popen([sys.executable, "-m", "lib_train_tools.train", *args], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    progress = out / "progress.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (progress.exists() and '"type": "step"' in progress.read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    done = events(out)[-1]
    assert done.type == "done" and done.status == "cancelled"
    assert load_file(str(out / "tiny.safetensors"))
    assert (out / "tiny-state" / "train_state.json").is_file()


@pytest.mark.parametrize("case,kind,names", [
    ("empty", "data", ["no training images", "<repeats>_<name>"]),
    ("bad_folder", "data", ["demo' must be named", "<repeats>_<name>"]),
    ("bad_image", "data", ["cannot read image", "00.png"]),
    ("optimizer", "config", ["NoSuchOptimizer", "AdamW"]),
    ("not_ckpt", "config", ["lora.safetensors", "LoRA file, not a base model"]),
])
def test_bad_inputs_end_with_error_event_and_exit_code(tiny_ckpt, tmp_path, case, kind, names):
    out = tmp_path / "out"
    ckpt, data, extra = tiny_ckpt, make_dataset(tmp_path), {}
    if case == "empty":
        data = tmp_path / "empty"
        (data / "1_nothing").mkdir(parents=True)
    elif case == "bad_folder":
        os.rename(data / "2_demo", data / "demo")
    elif case == "bad_image":
        (data / "2_demo" / "00.png").write_bytes(b"not an image")
    elif case == "optimizer":
        extra["optimizer_type"] = "NoSuchOptimizer"
    elif case == "not_ckpt":
        ckpt = tmp_path / "lora.safetensors"
        from safetensors.torch import save_file
        save_file({"lora_unet_x.lora_down.weight": torch.zeros(1, 1)}, str(ckpt))
    out.mkdir(parents=True, exist_ok=True)
    code = main(run_args(ckpt, data, out, **extra))
    assert code == EXIT_CODES[kind]
    evs = events(out)
    errors = [e for e in evs if e.type == "error"]
    assert len(errors) == 1 and errors[0].kind == kind
    assert all(name in errors[0].message for name in names), errors[0].message  # says what is wrong, and where
    assert evs[-1].type == "done" and evs[-1].status == "failed"
    assert not list(out.glob("*.safetensors"))


def test_nan_loss_stops_with_nan_error_and_keeps_last_checkpoint(tiny_ckpt, tmp_path, monkeypatch):
    import lib_train_tools.train.loop as loop

    data, out = make_dataset(tmp_path), tmp_path / "out"
    real = loop.compute_loss
    calls = {"n": 0}

    def nan_after_epoch_one(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 8 else loss

    monkeypatch.setattr(loop, "compute_loss", nan_after_epoch_one)
    code = main(run_args(tiny_ckpt, data, out, max_train_steps=None, max_train_epochs=3, save_every_n_epochs=1))
    assert code == EXIT_CODES["nan"]
    errors = [e for e in events(out) if e.type == "error"]
    assert errors[0].kind == "nan" and "step 9" in errors[0].message and errors[0].hint
    assert load_file(str(out / "tiny-000001.safetensors"))  # the last good file is intact
    assert not (out / "tiny.safetensors").exists()


CUDA_OOM = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
CPU_OOM = RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)")


@pytest.mark.parametrize("failure", [CUDA_OOM, CPU_OOM], ids=["cuda", "cpu"])
def test_out_of_memory_says_what_to_lower(tiny_ckpt, tmp_path, monkeypatch, failure):
    import lib_train_tools.train.loop as loop

    def oom(*args, **kwargs):
        raise failure

    monkeypatch.setattr(loop, "optimizer_step", oom)
    data, out = make_dataset(tmp_path), tmp_path / "out"
    assert main(run_args(tiny_ckpt, data, out)) == EXIT_CODES["out_of_memory"]
    error = [e for e in events(out) if e.type == "error"][0]
    assert error.kind == "out_of_memory" and "train_batch_size" in error.hint and "gradient_checkpointing" in error.hint
