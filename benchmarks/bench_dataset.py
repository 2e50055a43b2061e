"""Benchmark (not a test): images per second for upload + preprocessing of generated JPEGs.

    python benchmarks/bench_dataset.py [--images 200] [--size 1024] [--mode keep_aspect|crop] [--target 512]

Generates the JPEGs first (not timed) in a temporary folder, then times ``upload`` (checks and
copies into origin/) and ``preprocess`` (into processed/) separately, one process, as the tab
runs them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess  # noqa: E402
from lib_train_tools.datasets.upload import upload  # noqa: E402
from lib_train_tools.projects import Store  # noqa: E402


def generate(folder: Path, count: int, size: int) -> list[Path]:
    """Photo-like JPEGs: smooth colour fields (upscaled coarse noise) plus fine grain."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB")
        field = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-8, 9, (size, size, 1), dtype=np.int16)
        image = Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8), "RGB")
        path = folder / f"photo_{index:04d}.jpg"
        image.save(path, quality=90)
        (folder / f"photo_{index:04d}.txt").write_text("1girl, solo, outdoors", encoding="utf-8")
        paths += [path, path.with_suffix(".txt")]
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--mode", choices=("keep_aspect", "crop"), default="keep_aspect")
    parser.add_argument("--target", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        incoming = root / "incoming"
        incoming.mkdir()
        files = generate(incoming, args.images, args.size)
        store = Store(root / "store")
        store.create_project("bench")
        store.create_version("bench", "v1")
        version = store.version("bench", "v1")

        start = time.perf_counter()
        uploaded = upload(version, files)
        upload_s = time.perf_counter() - start
        options = PreprocessOptions(width=args.target, height=args.target, mode=args.mode)
        start = time.perf_counter()
        result = preprocess(version, options)
        preprocess_s = time.perf_counter() - start

    count = args.images
    print(f"[bench_dataset] {count} JPEGs {args.size}x{args.size}, {args.mode} -> {args.target}^2 area")
    print(f"  upload:     {upload_s:6.2f} s  {count / upload_s:7.1f} images/s  ({len(uploaded.refused)} refused)")
    print(f"  preprocess: {preprocess_s:6.2f} s  {count / preprocess_s:7.1f} images/s  ({len(result.outputs)} outputs)")
    total = upload_s + preprocess_s
    print(f"  together:   {total:6.2f} s  {count / total:7.1f} images/s")


if __name__ == "__main__":
    main()
