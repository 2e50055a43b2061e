"""Training runs on every family, LoCon, sample images and two processes: the files they write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from lib_train_tools.models.checkpoint_factory import recipe, write_checkpoint
from lib_train_tools.models.clip import CLIPTextModel
from lib_train_tools.models.unet import UNetModel
from lib_train_tools.network import create_network
from lib_train_tools.train.cli import main

from .test_training_run import ROOT, events, make_dataset, run_args


def _modules(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in load_file(str(path)):
        if key.endswith(".lora_down.weight"):
            prefix = key.split("_", 2)[0] + "_" + key.split("_", 2)[1]
            counts[prefix] = counts.get(prefix, 0) + 1
    return counts


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


def _expected_shapes(family: str, extra: dict) -> dict[str, tuple[int, ...]]:
    """The key set and shapes of the network for the tiny recipe (its names are checked against kohya's
    selection rule on diffusers' models in tests/network), built on the meta device."""
    r = recipe(family)
    with torch.device("meta"):
        unet, tes = UNetModel(r.unet), [CLIPTextModel(p.config) for p in r.text_encoders]
    network = create_network(unet, tes, family.removesuffix("-v"), 4, 2.0, conv_dim=extra.get("conv_dim"),
                             conv_alpha=extra.get("conv_alpha"))
    return {k: tuple(v.shape) for k, v in network.state_dict().items()}


@pytest.mark.parametrize("family,extra,counts,version", [
    ("sd1", {}, {"lora_unet": 192, "lora_te": 72}, "sd_v1"),
    ("sd1", {"conv_dim": 4, "conv_alpha": 1}, {"lora_unet": 278, "lora_te": 72}, "sd_v1"),
    ("sd2-v", {}, {"lora_unet": 192, "lora_te": 138}, "sd_v2_v"),
    ("sdxl", {}, {"lora_unet": 722, "lora_te1": 72, "lora_te2": 192}, "sdxl_base_v1-0"),
])
def test_each_family_writes_the_kohya_module_set(tmp_path, family, extra, counts, version):
    ckpt = write_checkpoint(tmp_path / f"{family}.safetensors", family=family, seed=5)
    data, out = make_dataset(tmp_path, count=2, folder="1_demo"), tmp_path / "out"
    assert main(run_args(ckpt, data, out, max_train_steps=2, **extra)) == 0
    lora = out / "tiny.safetensors"
    assert _modules(lora) == counts
    tensors = load_file(str(lora))
    assert {k: tuple(v.shape) for k, v in tensors.items()} == _expected_shapes(family, extra)
    for key, value in tensors.items():  # run_args: network_alpha 2; LoCon's kxk convs: conv_alpha
        if key.endswith(".alpha"):
            kxk = tensors[key.replace(".alpha", ".lora_down.weight")].shape[2:] not in ((), (1, 1))
            assert value.dtype == torch.float32 and value.ndim == 0
            assert float(value) == (extra["conv_alpha"] if kxk else 2.0), key
        else:
            assert value.dtype == torch.float32 and torch.isfinite(value).all(), key  # save_precision default
    meta = _metadata(lora)
    assert meta["ss_base_model_version"] == version
    assert meta["ss_v2"] == str(family.startswith("sd2"))
    assert meta["sshs_model_hash"] and meta["modelspec.architecture"].endswith("/lora")
    start = events(out)[0]
    assert start.type == "start" and start.architecture == family.removesuffix("-v")


def test_sample_images_are_written_during_training(tmp_path):
    ckpt = write_checkpoint(tmp_path / "sd1.safetensors", family="sd1", seed=5)
    data, out = make_dataset(tmp_path, count=2, folder="1_demo"), tmp_path / "out"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\ndemo, colour 1 --n blurry --w 64 --h 64 --s 2 --d 11\n", encoding="utf-8")
    assert main(run_args(ckpt, data, out, max_train_steps=None, max_train_epochs=2, sample_prompts=prompts,
                         sample_every_n_epochs=1, sample_sampler="euler_a")) == 0
    samples = [e for e in events(out) if e.type == "sample"]
    assert [e.epoch for e in samples] == [1, 2]
    image = Image.open(samples[0].path)
    assert image.size == (64, 64)
    assert "Negative prompt: blurry" in image.text["parameters"] and "Seed: 11" in image.text["parameters"]


def test_two_gloo_processes_train_and_write_one_file(tmp_path):
    ckpt = write_checkpoint(tmp_path / "sd1.safetensors", family="sd1", seed=5)
    data, out = make_dataset(tmp_path, count=4, folder="1_demo"), tmp_path / "out"
    args = run_args(ckpt, data, out, max_train_steps=None, max_train_epochs=1, device="cpu")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "lib_train_tools.train", *args]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    evs = events(out)
    assert [e.type for e in evs].count("start") == 1 and evs[-1].status == "completed"
    assert evs[-1].step == 2  # 4 samples, batch 1, split over 2 processes
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["tiny.safetensors"]
