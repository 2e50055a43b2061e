"""``python -m lib_train_tools.train --config run.toml [--option value ...]``: one training run.

Progress goes out as JSON lines (``protocol.py``) on stdout, or to ``--progress_file``; human-readable
log lines go to stderr. Every failure ends with one ``error`` event (kind, message, hint), a
``done`` event with status ``failed``, and its own exit code. SIGTERM / SIGINT ask the loop to stop
after the current step; it then saves a checkpoint and the state and exits 0 with ``cancelled``.
"""

from __future__ import annotations

import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import torch_compat
from ..models.checkpoint_file import CheckpointError
from .config import ConfigError, parse_cli, to_dict, validate
from .data import DataError
from .distributed import init_distributed
from .loop import NonFiniteLoss, train
from .optimizers import OptimizerArgError, OptimizerUnavailable
from .protocol import CheckpointEvent, DoneEvent, ProgressWriter, StartEvent
from .saving import Position, final_file, load_state, save_checkpoint, state_seed

EXIT_CODES = {"completed": 0, "cancelled": 0, "internal": 1, "config": 2, "data": 3, "out_of_memory": 4,
              "nan": 5, "io": 6, "interrupted": 130}
OOM_HINT = ("lower train_batch_size or resolution, turn on gradient_checkpointing and cache_latents, "
            "use mixed_precision bf16 (or fp16), or a smaller network_dim")
NAN_HINT = ("lower the learning rate, use bf16 instead of fp16, or lower noise_offset; "
            "the last checkpoint written before this step is intact")


@dataclass
class StopFlag:
    requested: bool = False


def log(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


def classify(error: BaseException) -> tuple[str, str, str | None]:
    """(kind, message, hint) for an exception that ended the run."""
    if isinstance(error, ConfigError):
        return "config", str(error), "fix the listed options and start again"
    if isinstance(error, (OptimizerUnavailable, OptimizerArgError)):
        return "config", str(error), None
    if isinstance(error, CheckpointError):
        return "config", f"base model: {error}", "choose a full SD1.x, SD2.x or SDXL checkpoint"
    if isinstance(error, DataError):
        return "data", str(error), None
    if torch_compat.is_out_of_memory(error):
        return "out_of_memory", f"out of memory: {str(error).splitlines()[0]}", OOM_HINT
    if isinstance(error, NonFiniteLoss):
        return "nan", str(error), NAN_HINT
    if isinstance(error, OSError):
        return "io", f"{type(error).__name__}: {error}", "check the paths, free disk space and permissions"
    return "internal", f"{type(error).__name__}: {error}", "please report this with the log"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    progress_target = _progress_target(argv)
    with ProgressWriter(progress_target) as progress:
        try:
            return _run(argv, progress)
        except KeyboardInterrupt:  # a second stop request: leave at once, without saving
            progress.write(DoneEvent(status="cancelled"))
            return EXIT_CODES["interrupted"]
        except Exception as e:  # every failure becomes one error event and an exit code
            kind, message, hint = classify(e)
            if kind == "internal":
                traceback.print_exc(file=sys.stderr)
            progress.error(kind, message, hint)
            progress.write(DoneEvent(status="failed"))
            log(f"{kind} error: {message}")
            return EXIT_CODES[kind]


def _progress_target(argv: list[str]) -> Any:
    """The progress file named on the command line (read before the config, so config errors reach it)."""
    path = None
    for i, arg in enumerate(argv):
        if arg == "--progress_file" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--progress_file="):
            path = arg.split("=", 1)[1]
    if path is None:
        return sys.stdout
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path


def _run(argv: list[str], progress: ProgressWriter) -> int:
    from .session import build_session

    cfg, warnings = parse_cli(argv)
    validate(cfg)
    if cfg.dataset_config:
        raise ConfigError(["dataset_config files are not supported yet: use train_data_dir with "
                           "<repeats>_<name> folders (and reg_data_dir)"])
    warnings = list(dict.fromkeys(warnings))  # parse_cli's list already holds the compatibility notes
    dist = init_distributed(cfg.device)
    for warning in warnings:
        log(warning)
        if dist.is_main:
            progress.warning(warning)
    stop = StopFlag()
    _install_signal_handlers(stop)
    if cfg.resume and cfg.seed is None:
        cfg = type(cfg)(**{**to_dict(cfg), "seed": state_seed(cfg.resume)})
    session = build_session(cfg, dist, log)
    start = load_state(session, cfg.resume) if cfg.resume else Position(0, 0, 0)
    if dist.is_main:
        progress.write(StartEvent(config=to_dict(cfg), architecture=session.models.family,
                                  total_steps=session.plan.total_steps, total_epochs=session.plan.epochs,
                                  steps_per_epoch=session.plan.steps_per_epoch, device=str(session.device)))
    status, position = train(session, progress, stop, start)
    path = final_file(session.output_dir, session.output_name)
    if status == "completed" and dist.is_main:
        save_checkpoint(session, path, session.plan.epochs, position.step)
        progress.write(CheckpointEvent(path=str(path), step=position.step, epoch=session.plan.epochs))
    dist.barrier()
    if dist.is_main:
        progress.write(DoneEvent(status=status, path=str(path), step=position.step))
    dist.close()
    return EXIT_CODES[status]


def _install_signal_handlers(stop: StopFlag) -> None:
    def request_stop(signum, frame):
        if stop.requested:  # a second signal: stop now
            raise KeyboardInterrupt
        stop.requested = True
        log(f"signal {signum}: stopping after the current step, then saving")

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, request_stop)
        except ValueError:  # not in the main thread (tests calling main() from a thread)
            pass
