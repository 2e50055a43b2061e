"""A stand-in for ``python -m lib_train_tools.train`` in the job-queue tests: no torch, no model.

Takes the real trainer's arguments (``--config run.toml --progress_file F [--resume DIR]``) and
writes real protocol events through ``ProgressWriter``. What it does comes from the config's
``training_comment``, as ``key=value`` pairs separated by ``;``:

    steps=3          optimizer steps to report (2 steps per epoch)
    delay=0.01       seconds per step
    mode=complete    complete | error (error event, done failed, exit 3) | crash (exit 1, no done)
                     | exit0 (exit 0 without a done event)
    ignore_term=1    ignore SIGTERM (the queue must kill it)
    wait_file=PATH   before the first step, wait until PATH exists
    resume_steps=N   when resumed, report N more steps (default: the rest)

On SIGTERM it stops after the current step, writes the LoRA and a ``<name>-state`` folder, ends
with done(cancelled) and exits 0, as the real trainer does.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from lib_train_tools.train.config import load_config
from lib_train_tools.train.protocol import (
    CheckpointEvent,
    DoneEvent,
    EpochEvent,
    ProgressWriter,
    StartEvent,
    StepEvent,
)

STEPS_PER_EPOCH = 2


def parse_args(argv: list[str]) -> dict[str, str]:
    args = {}
    for i in range(0, len(argv) - 1, 2):
        args[argv[i].lstrip("-")] = argv[i + 1]
    return args


def behaviour(comment: str | None) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in (comment or "").split(";") if "=" in item]
    return {k.strip(): v.strip() for k, v in pairs}


def write_lora(path: Path) -> Path:
    path.write_bytes(b"fake lora " + path.name.encode("utf-8"))
    return path


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    cfg, _ = load_config(args["config"])
    how = behaviour(cfg.training_comment)
    out, name = Path(cfg.output_dir), cfg.output_name
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: None if how.get("ignore_term") else stop.update(requested=True))
    total = int(how.get("steps", 3))
    first = 0
    if args.get("resume"):
        first = json.loads((Path(args["resume"]) / "train_state.json").read_text(encoding="utf-8"))["step"]
        if "resume_steps" in how:
            total = first + int(how["resume_steps"])
    delay = float(how.get("delay", 0.01))
    with ProgressWriter(args["progress_file"]) as progress:
        epochs = -(-total // STEPS_PER_EPOCH)
        progress.write(StartEvent(config={"output_name": name}, architecture="sd1", total_steps=total,
                                  total_epochs=epochs, steps_per_epoch=STEPS_PER_EPOCH, device="cpu"))
        print(f"fake trainer {name} starting at step {first}", flush=True)
        wait_file = how.get("wait_file")
        while wait_file and not Path(wait_file).exists() and not stop["requested"]:
            time.sleep(0.02)
        for step in range(first + 1, total + 1):
            time.sleep(delay)
            epoch = (step - 1) // STEPS_PER_EPOCH + 1
            progress.write(StepEvent(step=step, total_steps=total, epoch=epoch, loss=1.0 / step, avg_loss=1.0,
                                     lr=1e-4, it_per_sec=10.0, eta_sec=(total - step) / 10.0))
            if stop["requested"]:
                path = write_lora(out / f"{name}.safetensors")
                progress.write(CheckpointEvent(path=str(path), step=step, epoch=epoch))
                state = out / f"{name}-state"
                state.mkdir(exist_ok=True)
                (state / "train_state.json").write_text(json.dumps({"step": step}), encoding="utf-8")
                progress.write(DoneEvent(status="cancelled", path=str(path), step=step))
                return 0
            if step % STEPS_PER_EPOCH == 0 and step < total:
                progress.write(EpochEvent(epoch=epoch, total_epochs=epochs, avg_loss=0.5))
                path = write_lora(out / f"{name}-{epoch:06d}.safetensors")
                progress.write(CheckpointEvent(path=str(path), step=step, epoch=epoch))
        return finish(how.get("mode", "complete"), progress, out, name, total)


def finish(mode: str, progress: ProgressWriter, out: Path, name: str, total: int) -> int:
    if mode == "error":
        print("fake trainer: about to report an error", file=sys.stderr, flush=True)
        progress.error("data", "fake: no usable images", "add images to the dataset")
        progress.write(DoneEvent(status="failed"))
        return 3
    if mode == "crash":
        print("Traceback (most recent call last):\nRuntimeError: fake crash", file=sys.stderr, flush=True)
        return 1
    if mode == "exit0":
        return 0
    path = write_lora(out / f"{name}.safetensors")
    progress.write(CheckpointEvent(path=str(path), step=total, epoch=-(-total // STEPS_PER_EPOCH)))
    progress.write(DoneEvent(status="completed", path=str(path), step=total))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
