"""Benchmark (not a test): training speed and memory of our trainer, optionally next to sd-scripts.

    python benchmarks/bench_train.py --ckpt model.safetensors --resolution 128 --steps 8
    python benchmarks/bench_train.py --ckpt model.safetensors --kohya --repeat 2   # also kohya's trainer
    python benchmarks/bench_train.py --family sd1                                   # a tiny generated checkpoint

Both trainers get the same checkpoint, the same dataset (generated, or ``--data``) and the same
sd-scripts TOML (``--config_file``), and run one after the other (``--repeat`` alternates them).
Printed per run: time to the first step (process start to the end of the first step), seconds per
step (median of the intervals between later steps, so the first step is left out), samples per
second, peak memory (the child's peak RSS from ``wait4`` on CPU; max allocated CUDA memory on GPU,
ours only), the same two times in the child's CPU seconds (all threads, from /proc when a step is
reported), and the 1-minute load average before and after. Wall times taken while other work ran
(load above the number of cores) are not comparable; with ``OMP_NUM_THREADS=1`` (both trainers
inherit it) the CPU-second figures stay comparable under load. kohya needs the harness
(``../shared/harness``: setup.sh; ``$HARNESS_DATA`` default ``../harness-data``).
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

KOHYA_STEP_RE = re.compile(r"steps:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+) \[")


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


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far, all its threads (Linux /proc; else None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(cmd: list[str], cwd: Path, env: dict, on_line) -> dict:
    """Run ``cmd``; feed its output lines to ``on_line(text, t, cpu)`` (wall clock time, child CPU seconds);
    return start time, exit code, peak RSS, CPU seconds and the load average before and after."""
    load_before = os.getloadavg()[0]
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def pump():
        buf = b""
        while chunk := proc.stdout.read1(4096):
            now, cpu = time.time(), process_cpu_seconds(proc.pid)
            buf += chunk
            *parts, buf = re.split(rb"[\r\n]", buf)
            for part in parts:
                on_line(part.decode("utf-8", "replace"), now, cpu)

    reader = threading.Thread(target=pump)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    reader.join()
    return {"start": start, "code": os.waitstatus_to_exitcode(status), "rss": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime, "load": (load_before, os.getloadavg()[0])}


def bench_ours(args, config: Path, work: Path, run: int) -> dict:
    cmd = [sys.executable, "-m", "lib_train_tools.train", "--config_file", str(config),
           "--output_dir", str(work / f"out-ours-{run}")]  # progress events come on stdout
    if args.device:
        cmd += ["--device", args.device]
    tail: list[str] = []
    events, cpu_at_step = [], []

    def on_line(text: str, t: float, cpu: float | None) -> None:
        tail.append(text)
        try:
            event = json.loads(text) if text.startswith("{") else None
        except ValueError:
            event = None
        if isinstance(event, dict) and "type" in event:
            events.append(event)
            if event["type"] == "step":
                cpu_at_step.append(cpu)

    m = run_measured(cmd, ROOT, dict(os.environ), on_line)
    steps = [e for e in events if e["type"] == "step"]
    if m["code"] != 0 or not steps:
        errors = [e for e in events if e["type"] == "error"]
        raise SystemExit(f"our trainer failed (exit {m['code']}): {errors}\n" + "\n".join(tail[-20:]))
    vram = max((e.get("memory_mb") or 0) for e in steps)
    return _figures("ours", m, [e["time"] for e in steps], cpu_at_step, vram or None, args.batch)


def harness_data() -> Path:
    """$HARNESS_DATA, else ``harness-data`` beside this checkout or beside its parent (worktrees)."""
    if os.environ.get("HARNESS_DATA"):
        return Path(os.environ["HARNESS_DATA"]).resolve()
    candidates = [ROOT.parent / "harness-data", ROOT.parent.parent / "harness-data"]
    return next((c.resolve() for c in candidates if c.is_dir()), candidates[0])


def bench_kohya(args, config: Path, work: Path, run: int) -> dict:
    data = harness_data()
    python, kohya = data / "venv" / "bin" / "python", data / "sd-scripts"
    if not python.exists() or not (kohya / "train_network.py").exists():
        raise SystemExit(f"kohya harness not found under {data}; run ../shared/harness/setup.sh first")
    from lib_train_tools.models.loader import load_architecture
    script = "sdxl_train_network.py" if load_architecture(args.ckpt).family == "sdxl" else "train_network.py"
    cmd = [str(python), str(kohya / script), "--config_file", str(config),
           "--tokenizer_cache_dir", str(data / "tokenizers"), "--output_dir", str(work / f"out-kohya-{run}")]
    if args.kohya_sdpa:
        cmd.append("--sdpa")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    step_at: dict[int, tuple[float, float | None]] = {}
    tail: list[str] = []

    def on_line(text: str, t: float, cpu: float | None) -> None:
        tail.append(text)
        for match in KOHYA_STEP_RE.finditer(text):  # kohya's "steps:" bar, redrawn after every step
            if match.group(2) == str(args.steps):
                step_at.setdefault(int(match.group(1)), (t, cpu))

    m = run_measured(cmd, kohya, env, on_line)
    done = [step_at[k] for k in sorted(step_at) if k > 0]
    if m["code"] != 0 or not done:
        raise SystemExit(f"kohya failed (exit {m['code']})\n" + "\n".join(tail[-20:]))
    return _figures("kohya", m, [t for t, _ in done], [c for _, c in done], None, args.batch)


def _median_interval(values: list[float]) -> float:
    intervals = [b - a for a, b in zip(values, values[1:])]
    return statistics.median(intervals) if intervals else float("nan")


def _figures(name: str, m: dict, times: list[float], cpu: list[float | None], vram: float | None,
             batch: int) -> dict:
    """Wall and CPU figures: first step from the process start, per step the median of later intervals."""
    per_step = _median_interval(times)
    known_cpu = None not in cpu and len(cpu) == len(times)
    return {"trainer": name, "first_step_s": times[0] - m["start"], "s_per_step": per_step,
            "samples_per_s": batch / per_step, "peak_rss_mib": m["rss"], "peak_vram_mib": vram,
            "cpu_s": m["cpu_s"], "load": m["load"], "steps_timed": len(times),
            "first_step_cpu_s": cpu[0] if known_cpu else float("nan"),
            "cpu_s_per_step": _median_interval(cpu) if known_cpu else float("nan")}


def _print_run(r: dict) -> None:
    vram = f", peak VRAM {r['peak_vram_mib']:.0f} MiB" if r["peak_vram_mib"] else ""
    print(f"{r['trainer']:>6}: first step {r['first_step_s']:.1f} s, {r['s_per_step']:.2f} s/step, "
          f"{r['samples_per_s']:.3f} samples/s, peak RSS {r['peak_rss_mib']:.0f} MiB{vram}; "
          f"CPU: {r['first_step_cpu_s']:.1f} s to the first step, {r['cpu_s_per_step']:.2f} s/step, "
          f"{r['cpu_s']:.0f} s in all; load {r['load'][0]:.2f} -> {r['load'][1]:.2f}", flush=True)


def _median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="training speed and memory, ours vs sd-scripts")
    p.add_argument("--ckpt", type=Path, help="base checkpoint (.safetensors/.ckpt)")
    p.add_argument("--family", default="sd1", help="family of a generated tiny checkpoint when no --ckpt")
    p.add_argument("--data", type=Path, help="train_data_dir with <repeats>_<name> folders (default: generated)")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dim", type=int, default=4)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--conv-dim", type=int, default=0, help="LoCon conv_dim (0: plain LoRA)")
    p.add_argument("--precision", choices=["no", "fp16", "bf16"], default="no")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--kohya", action="store_true", help="also run sd-scripts' train_network.py")
    p.add_argument("--kohya-sdpa", action="store_true", help="give kohya --sdpa (its default is plain attention)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each trainer, alternating (medians printed)")
    p.add_argument("--work-dir", type=Path, help="keep the dataset, TOML and LoRA files here (must not exist)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    runs: dict[str, list[dict]] = {"ours": [], "kohya": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.work_dir:
            args.work_dir.mkdir(parents=True)
            work = args.work_dir.resolve()
        if args.ckpt is None:
            from lib_train_tools.models.checkpoint_factory import write_checkpoint
            args.ckpt = write_checkpoint(work / f"tiny-{args.family}.safetensors", family=args.family)
        config = work / "bench.toml"
        data = args.data.resolve() if args.data else make_dataset(work / "img", args.resolution)
        write_toml(config, args, data, work / "out")
        setting = (f"{args.ckpt.name}, {args.resolution}px, batch {args.batch}, dim {args.dim}"
                   f"{f', conv {args.conv_dim}' if args.conv_dim else ''}, precision {args.precision}, "
                   f"{args.steps} steps, {os.cpu_count()} CPUs")
        print(f"setting: {setting}", flush=True)
        for run in range(args.repeat):
            runs["ours"].append(bench_ours(args, config, work, run))
            _print_run(runs["ours"][-1])
            if args.kohya:
                runs["kohya"].append(bench_kohya(args, config, work, run))
                _print_run(runs["kohya"][-1])
    if args.kohya:
        ours, kohya = runs["ours"], runs["kohya"]
        label = f"median of {args.repeat} runs each" if args.repeat > 1 else "one run each"
        ratio = {key: _median_of(ours, key) / _median_of(kohya, key) for key in
                 ("s_per_step", "peak_rss_mib", "first_step_s", "cpu_s_per_step", "first_step_cpu_s")}
        print(f" ratio ({label}, ours / kohya): step time {ratio['s_per_step']:.2f}x (target <= 0.67), "
              f"peak RSS {ratio['peak_rss_mib']:.2f}x (<= 0.7), time to first step {ratio['first_step_s']:.2f}x "
              f"(<= 0.5); in CPU seconds: per step {ratio['cpu_s_per_step']:.2f}x, "
              f"to the first step {ratio['first_step_cpu_s']:.2f}x")


if __name__ == "__main__":
    main()
