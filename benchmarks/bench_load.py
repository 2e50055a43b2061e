"""Benchmark (not a test): time and peak memory to load a single-file checkpoint with our loader.

    python benchmarks/bench_load.py --ckpt path/to/model.safetensors [--dtype float16]
    python benchmarks/bench_load.py --family sd1 --size real      # writes a random SD1.5-layout file first

The checkpoint is written (when asked) in a child process, so the figures below are those of a
process that only imports torch and loads. Peak RSS is the kernel's high-water mark of this
process (``ru_maxrss``); ``.safetensors`` tensors are fetched with plain positioned reads, so the
file's pages are page cache, not part of it (a ``.ckpt`` is memory-mapped by ``torch.load``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lib_train_tools.models.checkpoint_factory import FAMILIES, SIZES, write_checkpoint  # noqa: E402
from lib_train_tools.models.loader import load_checkpoint  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _write(path: str, family: str, size: str) -> None:
    write_checkpoint(path, family=family, size=size)


def main() -> None:
    parser = argparse.ArgumentParser(description="time and peak memory of loading a checkpoint")
    parser.add_argument("--ckpt", type=Path, help="checkpoint to load (.safetensors or .ckpt)")
    parser.add_argument("--family", choices=FAMILIES, default="sd1", help="family to generate when no --ckpt")
    parser.add_argument("--size", choices=SIZES, default="tiny", help="size to generate when no --ckpt")
    parser.add_argument("--format", choices=[".safetensors", ".ckpt"], default=".safetensors")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="working dtype to cast to")
    args = parser.parse_args()

    tmp = None
    ckpt = args.ckpt
    if ckpt is None:
        tmp = tempfile.TemporaryDirectory()
        ckpt = Path(tmp.name) / f"{args.family}-{args.size}{args.format}"
        child = multiprocessing.get_context("spawn").Process(target=_write, args=(str(ckpt), args.family, args.size))
        child.start()
        child.join()
        if child.exitcode != 0:
            sys.exit(f"writing the checkpoint failed (exit code {child.exitcode})")

    baseline = current_rss_mib()
    start = time.perf_counter()
    models = load_checkpoint(ckpt, dtype=DTYPES[args.dtype])
    seconds = time.perf_counter() - start
    params = sum(p.numel() for m in [models.unet, models.vae, *models.text_encoders] for p in m.parameters())
    print(f"load {models.architecture.display_name} {ckpt.name} ({ckpt.stat().st_size / 2**20:.0f} MiB file, "
          f"{params / 1e6:.1f}M params) as {args.dtype}: {seconds:.2f} s, peak RSS {peak_rss_mib():.0f} MiB "
          f"(baseline {baseline:.0f} MiB), torch {torch.__version__}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
