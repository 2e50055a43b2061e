"""The measured runs of ``benchmarks/gpu_check.py``: our trainer, the bare U-Net floor, kohya's trainer.

``train_case`` runs our trainer in a child process (its own CUDA memory peaks and RSS):

    python benchmarks/gpu_measure.py train --config_file X.toml --device cuda

runs ``lib_train_tools.train.cli.main`` exactly as ``python -m lib_train_tools.train`` does, then
prints one more JSON line (type ``gpu_check_memory``) with ``torch.cuda.max_memory_allocated`` and
``max_memory_reserved`` of the whole run, so the trainer and its progress protocol stay unchanged
(the protocol's step events carry only the allocated peak, ``memory_mb``).

``unet_floor`` (in the calling process; ``gpu_measure.py floor --ckpt X --resolution N --precision P``
alone) times the bare U-Net forward + backward as the training step runs it: the checkpoint's U-Net
in the run's weight dtype (``session.resolve_weight_dtype``, so fp16 on the CPU becomes float32 as in
training), the same autocast and gradient checkpointing, frozen weights, and latents that require
grad, so the backward reaches every layer as a LoRA on the early blocks needs. It is the floor a
training step is held to: s/it divided by it is the trainer's overhead factor.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEMORY_EVENT = "gpu_check_memory"
FLOOR_EVENT = "gpu_check_floor"
# sd-scripts' recommended Adafactor options (transformers-only ones; ours drops them with a note)
ADAFACTOR_ARGS = ["scale_parameter=False", "relative_step=False", "warmup_init=False"]


@dataclass(frozen=True)
class Case:
    """One training setting: an SD1.5 or SDXL checkpoint, shape, precision and optimizer."""

    name: str
    family: str          # checkpoint: "sd1" (SD1.5) or "sdxl"
    resolution: int
    precision: str       # mixed_precision
    optimizer: str
    gradient_checkpointing: bool = False
    cache_text_encoder_outputs: bool = False
    batch: int = 1
    dim: int = 16
    needs: str | None = None  # a module the case cannot run without

    def floor_key(self, resolution: int) -> tuple:
        return self.family, resolution, self.precision, self.gradient_checkpointing, self.batch

    def skip_reason(self) -> str | None:
        if self.needs and importlib.util.find_spec(self.needs) is None:
            return f"{self.needs} is not installed (nor in the wheels folder)"
        return None


def run_child(cmd: list[str], timeout: float, on_line: Callable[[str], None]) -> dict:
    """Run ``cmd`` in its own process group; feed its output lines to ``on_line``. Returns the exit
    code (None when killed at ``timeout``), peak RSS (MiB, from wait4) and wall seconds."""
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    result: dict[str, Any] = {"start": started, "code": None, "rss_mib": None}

    def pump() -> None:  # lines end in \n or \r (progress bars redraw with \r)
        assert proc.stdout is not None
        buf = b""
        while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
            *parts, buf = re.split(rb"[\r\n]", buf + chunk)
            for part in parts:
                on_line(part.decode("utf-8", "replace"))
        if buf:
            on_line(buf.decode("utf-8", "replace"))

    def reap() -> None:
        _, status, usage = os.wait4(proc.pid, 0)
        result.update(code=os.waitstatus_to_exitcode(status), rss_mib=usage.ru_maxrss / 1024)

    reader, reaper = threading.Thread(target=pump), threading.Thread(target=reap)
    reader.start()
    reaper.start()
    reaper.join(timeout)
    if reaper.is_alive():
        os.killpg(proc.pid, signal.SIGKILL)  # the group this function started
        reaper.join()
        result["timed_out"] = True
    reader.join()
    result["wall_s"] = time.time() - started
    return result


def json_lines(lines: list[str]) -> list[dict]:
    events = []
    for line in lines:
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "type" in event:
                events.append(event)
    return events


def child_train(argv: list[str]) -> int:
    """``python -m lib_train_tools.train ARGV``, then one line with the CUDA memory peaks."""
    import torch

    from lib_train_tools.train.cli import main

    code = main(argv)
    used = torch.cuda.is_available() and torch.cuda.is_initialized()
    print(json.dumps({"type": MEMORY_EVENT,
                      "max_memory_allocated": torch.cuda.max_memory_allocated() if used else None,
                      "max_memory_reserved": torch.cuda.max_memory_reserved() if used else None}), flush=True)
    return code


def unet_floor(ckpt: str, device_name: str, resolution: int, precision: str, gradient_checkpointing: bool,
               batch: int = 1, iters: int = 10, warmup: int = 3) -> dict:
    """Median seconds of the bare U-Net forward + backward as the training step runs it (module docstring),
    with the peak CUDA memory of the measurement. Leaves nothing on the device."""
    import gc
    import types

    import torch

    from lib_train_tools import torch_compat
    from lib_train_tools.models.loader import load_checkpoint
    from lib_train_tools.train import frozen_conv
    from lib_train_tools.train.session import resolve_weight_dtype
    from lib_train_tools.train.step import unet_kernels

    device = torch.device(device_name)
    cuda = device.type == "cuda"
    only_precision: Any = types.SimpleNamespace(mixed_precision=precision)  # all resolve_weight_dtype reads
    dtype = resolve_weight_dtype(only_precision, device, lambda _: None)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    unet = load_checkpoint(ckpt, dtype=dtype, device=device, parts=("unet",)).unet
    assert unet is not None
    load_s = time.perf_counter() - started
    unet.gradient_checkpointing = gradient_checkpointing
    if device.type == "cpu":  # as build_session does
        frozen_conv.install(unet)
    cfg, side = unet.config, resolution // 8
    generator = torch.Generator(device).manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=device)

    latents = randn(batch, cfg.in_channels, side, side)
    context = randn(batch, 77, cfg.context_dim).to(dtype)
    y = randn(batch, cfg.adm_in_channels).to(dtype) if cfg.adm_in_channels else None
    t = torch.randint(0, 1000, (batch,), generator=generator, device=device)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    times = []
    for i in range(warmup + iters):
        sync()
        tick = time.perf_counter()
        x = latents.to(dtype, copy=True).requires_grad_(True)
        with unet_kernels(device):
            with torch_compat.autocast(device, dtype, enabled=dtype != torch.float32):
                pred = unet(x, t, context, y)
            torch.nn.functional.mse_loss(pred.float(), latents).backward()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - tick)
    result = {"status": "ok", "s_per_it": statistics.median(times), "iters": len(times),
              "dtype": str(dtype).removeprefix("torch."), "load_s": load_s,
              "peak_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
              "peak_reserved_mib": torch.cuda.max_memory_reserved(device) / 2**20 if cuda else None}
    del unet, pred, x
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


def write_toml(path: Path, case: Case, ckpt: str, data: Path, out: Path, resolution: int, steps: int) -> None:
    """An sd-scripts TOML for ``case`` (kohya's trainer runs it unchanged)."""
    options: dict[str, Any] = {
        "pretrained_model_name_or_path": ckpt, "train_data_dir": str(data), "output_dir": str(out),
        "output_name": case.name, "save_model_as": "safetensors", "caption_extension": ".txt",
        "resolution": f"{resolution},{resolution}", "train_batch_size": case.batch, "max_train_steps": steps,
        "network_module": "networks.lora", "network_dim": case.dim, "network_alpha": case.dim,
        "network_train_unet_only": True, "learning_rate": 1e-4, "optimizer_type": case.optimizer,
        "mixed_precision": case.precision, "seed": 42, "max_data_loader_n_workers": 0, "cache_latents": True,
        "gradient_checkpointing": case.gradient_checkpointing,
        "cache_text_encoder_outputs": case.cache_text_encoder_outputs, "sdpa": True,
    }
    if case.optimizer == "Adafactor":
        options["optimizer_args"] = ADAFACTOR_ARGS
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items()), encoding="utf-8")


def median_interval(times: list[float]) -> float | None:
    intervals = [b - a for a, b in zip(times, times[1:])]
    return statistics.median(intervals) if intervals else None


def mib(value: float | None) -> float | None:
    return None if value is None else value / 2**20


def train_case(case: Case, ckpt: str, device: str, resolution: int, steps: int, warmup: int, work: Path,
               logs: Path, timeout: float) -> dict:
    """One run of our trainer; figures from its progress events and the child's memory line."""
    from bench_train import make_dataset

    folder = work / case.name
    data = make_dataset(folder / "img", resolution)
    config = folder / "config.toml"
    write_toml(config, case, ckpt, data, folder / "out", resolution, steps)
    cmd = [sys.executable, str(Path(__file__).resolve()), "train", "--config_file", str(config), "--device", device]
    lines: list[str] = []
    m = run_child(cmd, timeout, lines.append)
    (logs / f"{case.name}.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    events = json_lines(lines)
    steps_at = [e["time"] for e in events if e["type"] == "step"]
    memory = next((e for e in events if e["type"] == MEMORY_EVENT), {})
    errors = [e for e in events if e["type"] == "error"]
    result: dict[str, Any] = {
        "status": "ok", "resolution": resolution, "steps": len(steps_at), "warmup_steps": warmup,
        "s_per_it": median_interval(steps_at[warmup:]),
        "first_step_s": steps_at[0] - m["start"] if steps_at else None,
        "peak_allocated_mib": mib(memory.get("max_memory_allocated")),
        "peak_reserved_mib": mib(memory.get("max_memory_reserved")),
        "peak_rss_mib": m["rss_mib"], "wall_s": m["wall_s"], "exit_code": m["code"],
        "final_loss": next((e.get("loss") for e in reversed(events) if e["type"] == "step"), None),
    }
    if m["code"] != 0 or len(steps_at) < steps:
        why = errors[0]["message"] if errors else ("timed out" if m.get("timed_out") else "\n".join(lines[-5:]))
        result.update(status="failed", reason=why)
    return result


def kohya_python(time_left: float) -> tuple[str | None, str | None]:
    """(the sd-scripts harness venv's python, None) when kohya can run here on CUDA, else (None, why not)."""
    from bench_train import harness_data

    data = harness_data()
    python, kohya = data / "venv" / "bin" / "python", data / "sd-scripts"
    if not python.exists() or not (kohya / "train_network.py").exists():
        return None, (f"no sd-scripts harness under {data} (../shared/harness/setup.sh; kohya needs its own venv "
                      "with transformers, diffusers and accelerate)")
    probe = subprocess.run([str(python), "-c", "import torch; print(torch.cuda.is_available())"],
                           capture_output=True, text=True, check=False)
    if probe.stdout.strip() != "True":
        return None, f"the harness venv's torch ({python}) has no CUDA"
    if time_left < 120:
        return None, f"not enough time left ({time_left:.0f} s)"
    return str(python), None


def kohya_case(python: str, case: Case, work: Path, logs: Path, timeout: float) -> dict:
    """kohya's trainer on the TOML ``train_case`` wrote for ``case``: s/it from its progress bar."""
    from bench_train import KOHYA_STEP_RE, harness_data

    data = harness_data()
    folder = work / case.name
    script = "sdxl_train_network.py" if case.family == "sdxl" else "train_network.py"
    cmd = [python, str(data / "sd-scripts" / script), "--config_file", str(folder / "config.toml"),
           "--tokenizer_cache_dir", str(data / "tokenizers"), "--output_dir", str(folder / "out-kohya")]
    step_at: dict[int, float] = {}
    lines: list[str] = []

    def on_line(text: str) -> None:
        lines.append(text)
        for match in KOHYA_STEP_RE.finditer(text):
            step_at.setdefault(int(match.group(1)), time.time())

    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    m = run_child(cmd, timeout, on_line)
    (logs / f"{case.name}.kohya.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    times = [step_at[k] for k in sorted(step_at) if k > 0]
    if m["code"] != 0 or len(times) < 3:
        return {"status": "failed", "reason": "\n".join(lines[-5:])}
    return {"status": "ok", "s_per_it": median_interval(times[len(times) // 4:]), "peak_rss_mib": m["rss_mib"]}


def parse_args(argv: list[str]) -> tuple[str, argparse.Namespace, list[str]]:
    if not argv or argv[0] not in ("train", "floor"):
        raise SystemExit("usage: gpu_measure.py train TRAINER_ARGS... | floor --ckpt X --resolution N ...")
    if argv[0] == "train":
        return "train", argparse.Namespace(), argv[1:]
    p = argparse.ArgumentParser(prog="gpu_measure.py floor")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--precision", choices=["no", "fp16", "bf16"], required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    return "floor", p.parse_args(argv[1:]), []


if __name__ == "__main__":
    command, options, rest = parse_args(sys.argv[1:])
    if command == "train":
        sys.exit(child_train(rest))
    print(json.dumps({"type": FLOOR_EVENT, **unet_floor(options.ckpt, options.device, options.resolution,
                      options.precision, options.gradient_checkpointing, options.batch, options.iters,
                      options.warmup)}), flush=True)
