"""sd-scripts' ``alpha_mask``: the alpha channel is the loss mask, and the masked loss is on with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lib_train_tools.train.cli import main
from lib_train_tools.train.config import load_config, parse_cli
from lib_train_tools.train.data import TrainingDataset
from lib_train_tools.train.session import _data_options
from tests.train.test_training_run import events, make_dataset, tiny_ckpt  # noqa: F401

REQUIRED = {"pretrained_model_name_or_path": "/m.safetensors", "output_dir": "/out"}
SD_SCRIPTS_TOML = """
[model_arguments]
pretrained_model_name_or_path = "{ckpt}"

[dataset_arguments]
train_data_dir = "{data}"
resolution = "64"
alpha_mask = true

[training_arguments]
output_dir = "{out}"
output_name = "tiny"
max_train_steps = 2
train_batch_size = 1
seed = 7
cache_latents = true

[network_arguments]
network_module = "networks.lora"
network_dim = 4
network_alpha = 2
"""


def _toml(tmp_path: Path, ckpt: Path, data: Path, out: Path) -> Path:
    path = tmp_path / "sd_scripts.toml"
    text = SD_SCRIPTS_TOML.format(ckpt=ckpt.as_posix(), data=data.as_posix(), out=out.as_posix())
    path.write_text(text, encoding="utf-8")
    return path


def _transparent_left_half(path: Path) -> None:
    rgba = np.full((64, 64, 4), 90, dtype=np.uint8)
    rgba[:, :, 3] = 255
    rgba[:, :32, 3] = 0
    Image.fromarray(rgba, "RGBA").save(path)


def test_an_sd_scripts_toml_with_alpha_mask_loads_without_warnings(tmp_path: Path) -> None:
    path = _toml(tmp_path, Path("/m.safetensors"), Path("/data"), Path("/out"))
    cfg, warnings = load_config(str(path))
    assert cfg.alpha_mask is True and cfg.masked_loss is False
    assert not [w for w in warnings if "alpha_mask" in w or "unknown" in w], warnings
    flag, _ = parse_cli(["--pretrained_model_name_or_path", "/m", "--train_data_dir", "/d", "--output_dir", "/o",
                         "--alpha_mask"])
    assert flag.alpha_mask is True
    assert load_config(None, dict(REQUIRED, train_data_dir="/d"))[0].alpha_mask is False  # off unless asked


def test_alpha_mask_turns_the_masked_loss_on_with_the_alpha_as_mask(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, count=2, folder="1_demo")
    _transparent_left_half(data / "1_demo" / "00.png")
    cfg, _ = load_config(str(_toml(tmp_path, Path("/m.safetensors"), data, tmp_path / "out")))
    options = _data_options(cfg, (64, 64), 7)
    assert options.masked_loss is True
    plain = _data_options(load_config(None, dict(REQUIRED, train_data_dir=str(data)))[0], (64, 64), 7)
    assert plain.masked_loss is False
    dataset = TrainingDataset.from_folders(options)
    masks = {}
    for planned in dataset.epoch_batches(0):  # train_batch_size = 1: one image per batch
        batch = dataset.load_batch(planned, 0)
        assert batch.masks is not None and batch.masks.shape == (1, 1, 8, 8)
        masks[batch.paths[0].name] = batch.masks[0, 0]
    left_zero = torch.cat([torch.zeros(8, 4), torch.ones(8, 4)], dim=1)
    torch.testing.assert_close(masks["00.png"], left_zero)  # the alpha channel, at latent size
    torch.testing.assert_close(masks["01.png"], torch.ones(8, 8))  # no alpha: trains everywhere


def test_a_run_from_the_sd_scripts_toml_applies_the_alpha_mask(tiny_ckpt, tmp_path: Path) -> None:  # noqa: F811
    data, out = make_dataset(tmp_path, count=2, folder="1_demo"), tmp_path / "out"
    clear = np.zeros((64, 64, 4), dtype=np.uint8)  # 00: fully transparent, so its loss is exactly 0
    Image.fromarray(clear, "RGBA").save(data / "1_demo" / "00.png")
    code = main(["--config_file", str(_toml(tmp_path, tiny_ckpt, data, out)),
                 "--progress_file", str(out / "progress.jsonl")])
    assert code == 0
    step_losses = [e.loss for e in events(out) if e.type == "step"]
    assert len(step_losses) == 2
    assert sorted(loss == 0.0 for loss in step_losses) == [False, True]
