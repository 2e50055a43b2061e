"""The standalone host: checkpoints found recursively with relative titles, WD14 folders, renderer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lib_train_tools.contracts import CheckpointChoice, HostSettings
from lib_train_tools.host.standalone import StandaloneHost


def test_checkpoints_are_found_at_any_depth_with_relative_titles(tmp_path: Path):
    folder = tmp_path / "models"
    for name in ("b.safetensors", "sub/A.ckpt", "sub/deeper/c.SAFETENSORS", "notes.txt", ".hidden/x.ckpt",
                 "sub/.part.safetensors"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    host = StandaloneHost(tmp_path / "out", folder)
    assert host.checkpoints() == [
        CheckpointChoice("b.safetensors", (folder / "b.safetensors").resolve()),
        CheckpointChoice("sub/A.ckpt", (folder / "sub/A.ckpt").resolve()),
        CheckpointChoice("sub/deeper/c.SAFETENSORS", (folder / "sub/deeper/c.SAFETENSORS").resolve()),
    ]


def test_a_missing_checkpoints_folder_lists_nothing(tmp_path: Path):
    assert StandaloneHost(tmp_path / "out", tmp_path / "absent").checkpoints() == []


def test_folders_and_defaults(tmp_path: Path):
    host = StandaloneHost(tmp_path / "out", tmp_path / "models", settings=HostSettings(auto_publish=False))
    assert host.name == "standalone"
    assert host.output_root() == (tmp_path / "out").resolve()
    assert host.lora_dir() == (tmp_path / "out" / "lora").resolve()
    assert host.settings().auto_publish is False
    assert host.python_executable() == sys.executable
    assert host.before_training() is None and host.after_training() is None
    assert host.clear_preview_staging() == 0   # nothing is staged outside the run's folder


@pytest.mark.parametrize("flag", [False, True])
def test_wd14_tagger_folders(tmp_path: Path, flag: bool):
    root = tmp_path / ("flag" if flag else "out/taggers")
    for name, files in {"wd-swinv2": ["model.onnx", "selected_tags.csv"], "empty": [], "half": ["model.onnx"]}.items():
        (root / name).mkdir(parents=True)
        for file in files:
            (root / name / file).write_bytes(b"")
    host = StandaloneHost(tmp_path / "out", tmp_path / "models", taggers_dir=root if flag else None)
    assert host.taggers_dir() == root.resolve()  # --taggers, default <output>/taggers (downloads go there)
    assert [t.name for t in host.taggers()] == ["WD14 (half)", "WD14 (wd-swinv2)"]
    half = host.taggers()[0].availability()
    assert not half.available  # no onnxruntime here, or no selected_tags.csv: either way it says why
    assert "onnxruntime" in half.reason or "selected_tags.csv" in half.reason


def test_preview_renderer_is_the_own_sampler(tmp_path: Path):
    from lib_train_tools.results.own_renderer import OwnSamplerRenderer

    renderer = StandaloneHost(tmp_path / "out", tmp_path / "models").preview_renderer()
    assert isinstance(renderer, OwnSamplerRenderer)


def test_one_renderer_keeps_its_model_until_training_starts(tmp_path: Path):
    from lib_train_tools.models.checkpoint_factory import write_checkpoint
    from lib_train_tools.results.preview import CellRequest

    host = StandaloneHost(tmp_path / "out", tmp_path / "models")
    renderer = host.preview_renderer()
    assert host.preview_renderer() is renderer  # one renderer: its cached model serves every preview
    base = write_checkpoint(tmp_path / "models" / "tiny.safetensors", family="sd1", seed=3)
    renderer.render(CellRequest(base_model=base, lora_path=None, weight=0.0, prompt="a", steps=1, width=64,
                                height=64))
    assert renderer.cached_base == base.resolve()
    host.before_training()
    assert renderer.cached_base is None
