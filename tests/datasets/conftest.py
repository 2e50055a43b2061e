"""Fixtures for the dataset tests: a store with one version and a generated set of small images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.projects import Store

from .booru_standin import BooruStandIn, StandInPost

CAPTION_TAGS = ["1girl", "blonde_hair", "striped shirt", "vertical stripes", "smile", "outdoors"]


def noise_image(seed: int, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> Image.Image:
    """A distinct image per seed: blocky random colours (so perceptual hashes differ)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(blocks, "RGB").resize(size, Image.Resampling.NEAREST)
    return image.convert(mode)


def caption_for(index: int) -> str:
    """Varied booru-style captions: every image has 1girl, others depend on the index."""
    tags = ["1girl"] + [t for k, t in enumerate(CAPTION_TAGS[1:], start=1) if (index + k) % 3 != 0]
    return ", ".join(tags)


def write_dataset(folder: Path, count: int = 20, size: tuple[int, int] = (64, 64)) -> list[Path]:
    """``count`` PNG images with same-stem .txt captions; returns all files written."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        image_path = folder / f"img{index:02d}.png"
        noise_image(index, size).save(image_path)
        caption_path = folder / f"img{index:02d}.txt"
        caption_path.write_text(caption_for(index), encoding="utf-8")
        files += [image_path, caption_path]
    return files


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "root")


@pytest.fixture
def version(store: Store):
    store.create_project("proj")
    store.create_version("proj", "v1")
    return store.version("proj", "v1")


@pytest.fixture
def source_files(tmp_path: Path) -> list[Path]:
    return write_dataset(tmp_path / "incoming")


@pytest.fixture
def loaded(version, source_files):
    """The version with the 20 generated images and captions uploaded into origin/."""
    from lib_train_tools.datasets.upload import upload

    upload(version, source_files)
    return version


@pytest.fixture
def serve():
    """Start booru stand-ins: ``serve(site, posts)``; all are stopped after the test."""
    servers: list[BooruStandIn] = []

    def start(site: str, posts: list[StandInPost]) -> BooruStandIn:
        server = BooruStandIn(site, posts).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
