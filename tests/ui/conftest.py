"""Fixtures for the UI tests: services on a temporary output root, and small generated files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.host.standalone import StandaloneHost
from lib_train_tools.services import create_services
from lib_train_tools.ui.selection import selection_key

from .completed_run import completed, prepared_root, results_services  # noqa: F401  (Results tab fixtures)


def picture(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A distinct blocky picture per seed (perceptual hashes differ between seeds)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks, "RGB").resize(size, Image.Resampling.NEAREST)


def write_pictures(folder: Path, count: int, start: int = 0, captions: list[str] | None = None) -> list[Path]:
    """``count`` PNGs (and same-stem .txt captions when given); returns every file written."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        path = folder / f"pic{start + i:02d}.png"
        picture(start + i).save(path)
        files.append(path)
        if captions:
            text = folder / f"pic{start + i:02d}.txt"
            text.write_text(captions[i % len(captions)], encoding="utf-8")
            files.append(text)
    return files


def write_zip(path: Path, members: list[Path]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for member in members:
            archive.write(member, f"inside/{member.name}")
    return path


@pytest.fixture
def services(tmp_path: Path):
    host = StandaloneHost(tmp_path / "out", tmp_path / "checkpoints")
    return create_services(host, start_queue=False)


@pytest.fixture
def selection(services) -> str:
    """A project ``テスト`` with version ``v1``; the selection key of that version."""
    services.store.create_project("テスト")
    services.store.create_version("テスト", "v1")
    return selection_key("テスト", "v1")


CAPTIONS = ["1girl, blonde_hair, smile", "1girl, blonde_hair, outdoors", "1girl, striped shirt, smile"]


@pytest.fixture
def processed(services, selection, tmp_path: Path) -> str:
    """The version with 6 uploaded and preprocessed pictures (64x64, captions from CAPTIONS)."""
    from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess
    from lib_train_tools.datasets.upload import upload

    version = services.store.version("テスト", "v1")
    upload(version, write_pictures(tmp_path / "incoming", 6, captions=CAPTIONS))
    preprocess(version, PreprocessOptions(width=64, height=64))
    return selection
