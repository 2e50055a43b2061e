"""The demo's files: a loadable tiny model, pictures with captions (some in a zip), a valid preset."""

from __future__ import annotations

import zipfile

from lib_train_tools.demo_files import DEMO_SETTINGS, PICTURES, prepare_demo
from lib_train_tools.models.loader import load_architecture
from lib_train_tools.presets import load_preset
from lib_train_tools.train.config import load_config


def test_prepare_demo(tmp_path):
    files = prepare_demo(tmp_path / "ck", tmp_path / "data", tmp_path / "out")
    assert load_architecture(files.checkpoint).family == "sd1"
    with zipfile.ZipFile(files.zip_file) as archive:
        zipped = sorted(archive.namelist())
    assert len(zipped) == 2 * (len(PICTURES) - 4) and all(n.startswith("pictures/") for n in zipped)
    assert (tmp_path / "data" / "red-circle.txt").read_text(encoding="utf-8") == "demo, red circle, white background"
    preset = load_preset(tmp_path / "out" / "presets", files.preset)
    trainer_options = {k: v for k, v in preset.items() if k not in ("repeats", "sample_prompt", "base_model")}
    load_config(overrides=dict(trainer_options, pretrained_model_name_or_path="m", train_data_dir="d",
                               output_dir="o"))  # raises if the preset's trainer options are invalid
    assert preset == DEMO_SETTINGS
    again = prepare_demo(tmp_path / "ck", tmp_path / "data", tmp_path / "out")
    assert again.checkpoint.stat().st_mtime == files.checkpoint.stat().st_mtime  # reused, not rewritten
