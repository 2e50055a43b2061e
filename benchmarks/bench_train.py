"""Benchmark (not a test): training speed and memory of our trainer, optionally next to sd-scripts.

    python benchmarks/bench_train.py --ckpt model.safetensors --resolution 128 --steps 6
    python benchmarks/bench_train.py --ckpt model.safetensors --kohya     # also run kohya's train_network.py
    python benchmarks/bench_train.py --family sd1                         # a tiny generated checkpoint

Both trainers get the same checkpoint, the same generated dataset and the same sd-scripts TOML
(``--config_file``). Printed per trainer: time to the first step (process start to the first
finished step), seconds per step (median of the later steps), samples per second, and peak
memory (the child's peak RSS on CPU; max allocated CUDA memory on GPU, ours only). kohya needs
the harness (``../shared/harness``: setup.sh; ``$HARNESS_DATA`` default ``../harness-data``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

STEP_RE = re.compile(r"\|\s*(\d+)/(\d+) \[")


def make_dataset(folder: Path, size: int, count: int = 4) -> Path:
    sub = folder / "1_bench"
    sub.mkdir(parents=True)
    for i in range(count):
        colour = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (128, 128, 128)][i % 4]
        image = Image.effect_noise((size, size), 40 + 10 * i).convert("RGB")
        image = Image.blend(image, Image.new("RGB", (size, size), colour), 0.6)
        image.save(sub / f"{i}.png")
        (sub / f"{i}.txt").write_text(f"bench image {i}", encoding="utf-8")
    return folder


def write_toml(path: Path, args, data: Path, out: Path) -> None:
    lines = {
        "pretrained_model_name_or_path": json.dumps(str(args.ckpt)), "train_data_dir": json.dumps(str(data)),
        "output_dir": json.dumps(str(out)), "output_name": '"bench"', "save_model_as": '"safetensors"',
        "caption_extension": '".txt"', "resolution": f'"{args.resolution},{args.resolution}"',
        "train_batch_size": str(args.batch), "max_train_steps": str(args.steps),
        "network_module": '"networks.lora"', "network_dim": str(args.dim), "network_alpha": str(args.alpha),
        "learning_rate": "1e-4", "optimizer_type": '"AdamW"', "mixed_precision": json.dumps(args.precision),
        "seed": "42", "max_data_loader_n_workers": "0",
        "gradient_checkpointing": "true" if args.gradient_checkpointing else "false",
    }
    if args.conv_dim:
        lines["network_args"] = f'["conv_dim={args.conv_dim}", "conv_alpha=1"]'
    path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()), encoding="utf-8")


def run_measured(cmd: list[str], cwd: Path, env: dict, on_line) -> tuple[float, int, float]:
    """Run ``cmd``; feed stdout/stderr text to ``on_line(text, t)``; return (start, exit code, peak RSS MiB)."""
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def pump():
        buf = b""
        while chunk := proc.stdout.read1(4096):
            buf += chunk
            *parts, buf = re.split(rb"[\r\n]", buf)
            for part in parts:
                on_line(part.decode("utf-8", "replace"), time.time())

    reader = threading.Thread(target=pump)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return start, proc.returncode, usage.ru_maxrss / 1024


def bench_ours(args, config: Path, work: Path) -> dict:
    progress = work / "ours-progress.jsonl"
    cmd = [sys.executable, "-m", "lib_train_tools.train", "--config_file", str(config), "--progress_file", str(progress),
           "--output_dir", str(work / "out-ours")]
    if args.device:
        cmd += ["--device", args.device]
    start, code, rss = run_measured(cmd, ROOT, dict(os.environ), lambda text, t: None)
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    if code != 0 or not steps:
        raise SystemExit(f"our trainer failed (exit {code}): {[e for e in events if e['type'] == 'error']}")
    times = [e["time"] for e in steps]
    vram = max((e.get("memory_mb") or 0) for e in steps)
    return _figures("ours", start, times, rss, vram or None, args.batch)


def bench_kohya(args, config: Path, work: Path) -> dict:
    data = Path(os.environ.get("HARNESS_DATA", ROOT.parent / "harness-data")).resolve()
    python, kohya = data / "venv" / "bin" / "python", data / "sd-scripts"
    if not python.exists() or not (kohya / "train_network.py").exists():
        raise SystemExit(f"kohya harness not found under {data}; run ../shared/harness/setup.sh first")
    from lib_train_tools.models.loader import load_architecture
    script = "sdxl_train_network.py" if load_architecture(args.ckpt).family == "sdxl" else "train_network.py"
    cmd = [str(python), str(kohya / script), "--config_file", str(config),
           "--tokenizer_cache_dir", str(data / "tokenizers"), "--output_dir", str(work / "out-kohya")]
    if args.kohya_sdpa:
        cmd.append("--sdpa")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    step_times: dict[int, float] = {}

    def on_line(text: str, t: float) -> None:
        for m in STEP_RE.finditer(text):
            if m.group(2) == str(args.steps):
                step_times.setdefault(int(m.group(1)), t)

    start, code, rss = run_measured(cmd, kohya, env, on_line)
    times = [step_times[k] for k in sorted(step_times) if k > 0]
    if code != 0 or not times:
        raise SystemExit(f"kohya failed (exit {code})")
    return _figures("kohya", start, times, rss, None, args.batch)


def _figures(name: str, start: float, times: list[float], rss: float, vram: float | None, batch: int) -> dict:
    intervals = [b - a for a, b in zip(times, times[1:])]
    per_step = statistics.median(intervals) if intervals else float("nan")
    return {"trainer": name, "first_step_s": times[0] - start, "s_per_step": per_step,
            "samples_per_s": batch / per_step if intervals else float("nan"), "peak_rss_mib": rss, "peak_vram_mib": vram}


def main() -> None:
    p = argparse.ArgumentParser(description="training speed and memory, ours vs sd-scripts")
    p.add_argument("--ckpt", type=Path, help="base checkpoint (.safetensors/.ckpt)")
    p.add_argument("--family", default="sd1", help="family of a generated tiny checkpoint when no --ckpt")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dim", type=int, default=4)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--conv-dim", type=int, default=0, help="LoCon conv_dim (0: plain LoRA)")
    p.add_argument("--precision", choices=["no", "fp16", "bf16"], default="no")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--kohya", action="store_true", help="also run sd-scripts' train_network.py")
    p.add_argument("--kohya-sdpa", action="store_true", help="give kohya --sdpa (its default is plain attention)")
    p.add_argument("--work-dir", type=Path, help="keep the dataset, TOML and LoRA files here (must not exist)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.work_dir:
            args.work_dir.mkdir(parents=True)
            work = args.work_dir.resolve()
        if args.ckpt is None:
            from lib_train_tools.models.checkpoint_factory import write_checkpoint
            args.ckpt = write_checkpoint(work / f"tiny-{args.family}.safetensors", family=args.family)
        config = work / "bench.toml"
        write_toml(config, args, make_dataset(work / "img", args.resolution), work / "out")
        results = [bench_ours(args, config, work)]
        if args.kohya:
            results.append(bench_kohya(args, config, work))
    setting = (f"{args.ckpt.name}, {args.resolution}px, batch {args.batch}, dim {args.dim}"
               f"{f', conv {args.conv_dim}' if args.conv_dim else ''}, precision {args.precision}, {args.steps} steps")
    print(f"setting: {setting}")
    for r in results:
        vram = f", peak VRAM {r['peak_vram_mib']:.0f} MiB" if r["peak_vram_mib"] else ""
        print(f"{r['trainer']:>6}: first step {r['first_step_s']:.1f} s, {r['s_per_step']:.2f} s/step, "
              f"{r['samples_per_s']:.2f} samples/s, peak RSS {r['peak_rss_mib']:.0f} MiB{vram}")
    if len(results) == 2:
        ours, kohya = results
        print(f" ratio: step time {ours['s_per_step'] / kohya['s_per_step']:.2f}x, "
              f"peak RSS {ours['peak_rss_mib'] / kohya['peak_rss_mib']:.2f}x, "
              f"time to first step {ours['first_step_s'] / kohya['first_step_s']:.2f}x (ours / kohya)")


if __name__ == "__main__":
    main()
