"""Tiny end-to-end runs with ``network_module = lycoris.kohya``: each algo trains, saves LyCORIS keys and
metadata, and the file continues as network_weights (CPU, tiny generated checkpoint, two steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lib_train_tools.train.cli import main

from .test_training_run import make_dataset, run_args, tiny_ckpt  # noqa: F401 - tiny_ckpt is a fixture

RUNS = {
    "loha": (["algo=loha", "conv_dim=2"], "hada_w2_a"),
    "lokr": (["algo=lokr", "factor=4"], "lokr_w1"),
    "dora": (["algo=lora", "dora_wd=True"], "dora_scale"),
    "locon-dora": (["algo=locon", "conv_dim=2", "dora_wd=True"], "dora_scale"),
}


def _file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


@pytest.mark.parametrize("algo", sorted(RUNS))
def test_each_algo_trains_and_saves_lycoris_keys(tiny_ckpt, tmp_path, algo):  # noqa: F811 - the fixture
    network_args, trained_part = RUNS[algo]
    data, out = make_dataset(tmp_path), tmp_path / "out"
    args = run_args(tiny_ckpt, data, out, max_train_steps=2, network_module="lycoris.kohya", learning_rate=1e-2)
    assert main(args + ["--network_args", *network_args]) == 0
    tensors, meta = _file(out / "tiny.safetensors")
    parts = {k.partition(".")[2] for k in tensors}
    assert trained_part in parts and "alpha" in parts
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in tensors)
    if algo == "loha":
        assert parts == {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"}
        assert any(k.startswith("lora_unet_down_blocks_0_resnets_0_conv1.") for k in tensors)  # conv_dim: LoCon layers
    # the zero-initialised half moved: training reached the adapters
    moved = [v for k, v in tensors.items() if k.endswith(("hada_w2_a", "lokr_w2", "lokr_w2_b", "lora_up.weight"))]
    assert moved and any(float(v.abs().max()) > 0 for v in moved)
    assert meta["ss_network_module"] == "lycoris.kohya"
    recorded = json.loads(meta["ss_network_args"])
    assert all(recorded[k] == v for k, v in (a.split("=") for a in network_args))
    # the file continues training as network_weights (kind, ranks and factors from the file)
    again = tmp_path / "again"
    args = run_args(tiny_ckpt, data, again, max_train_steps=1, network_module="lycoris.kohya",
                    network_weights=out / "tiny.safetensors")
    assert main(args + ["--network_args", *network_args]) == 0
    assert set(_file(again / "tiny.safetensors")[0]) == set(tensors)


def test_loha_asked_of_networks_lora_is_a_config_error(tiny_ckpt, tmp_path):  # noqa: F811 - the fixture
    data, out = make_dataset(tmp_path), tmp_path / "out"
    code = main(run_args(tiny_ckpt, data, out, max_train_steps=1) + ["--network_args", "algo=loha"])
    assert code != 0
    text = (out / "progress.jsonl").read_text(encoding="utf-8")
    assert 'lycoris.kohya' in text and "LoHa" in text
