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
from .saving import (
    NonFiniteWeights,
    NoSpaceLeft,
    Position,
    clean_leftovers,
    exception_chain,
    final_file,
    free_bytes,
    is_disk_full,
    load_state,
    mib,
    resolve_resume,
    save_checkpoint,
    space_warning,
    state_seed,
)

EXIT_CODES = {"completed": 0, "cancelled": 0, "internal": 1, "config": 2, "data": 3, "out_of_memory": 4,
              "nan": 5, "io": 6, "interrupted": 130}
OOM_HINT = ("lower train_batch_size or resolution, turn on gradient_checkpointing and cache_latents, "
            "use mixed_precision bf16 (or fp16), or a smaller network_dim")
NAN_HINT = ("lower the learning rate (or set max_grad_norm), use bf16 instead of fp16, or lower noise_offset, "
            "then start again; every file this run wrote holds finite weights")
DISK_HINT = ("free some space on that drive or set output_dir to one with more room, then start again (or resume "
             "from the run's -state folder, if one was saved); the files already written are complete")


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
    if isinstance(error, (NonFiniteLoss, NonFiniteWeights)):
        return "nan", str(error), NAN_HINT
    if isinstance(error, NoSpaceLeft):
        return "io", str(error), DISK_HINT
    if is_disk_full(error):  # ENOSPC / EDQUOT anywhere in the chain, outside a LoRA or state save
        return "io", _disk_full_message(error), DISK_HINT
    if torch_compat.is_out_of_memory(error):
        return "out_of_memory", f"out of memory: {_first_line(error)}", OOM_HINT
    if isinstance(error, OSError):
        return "io", f"{type(error).__name__}: {error}", "check the paths, free disk space and permissions"
    return "internal", f"{type(error).__name__}: {error}", "please report this with the log"


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


def _disk_full_message(error: BaseException) -> str:
    """"no space left on <folder>: N MiB free (...)" with the folder of the file being written, if known."""
    for current in exception_chain(error):
        if isinstance(current, OSError) and current.filename:
            folder = Path(current.filename).parent
            free = free_bytes(folder)
            have = f": {mib(free)} MiB free" if free is not None else ""
            return f"no space left on {folder}{have} ({type(error).__name__}: {_first_line(error)})"
    return f"no space left on the device ({type(error).__name__}: {_first_line(error)})"


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
    cfg = _prepare_output(cfg, dist.is_main, progress)
    session = build_session(cfg, dist, log)
    start = load_state(session, cfg.resume) if cfg.resume else Position(0, 0, 0)
    if dist.is_main:
        for message in session.dataset.caption_warnings(session.settings.token_windows):
            _warn(progress, message)
        _warn(progress, space_warning(session, start))
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


def _warn(progress: ProgressWriter, message: str | None) -> None:
    if message:
        log(message)
        progress.warning(message)


def _prepare_output(cfg: Any, is_main: bool, progress: ProgressWriter) -> Any:
    """Pick the state to resume from (the newest complete one), take its seed, and remove what
    interrupted saves left in the output folder (only files of ours)."""
    if cfg.resume:
        resume, note = resolve_resume(cfg.resume)
        seed = cfg.seed if cfg.seed is not None else state_seed(resume)
        cfg = type(cfg)(**{**to_dict(cfg), "resume": str(resume), "seed": seed})
        if is_main:
            _warn(progress, note)
    if is_main and cfg.output_dir:
        clean_leftovers(Path(cfg.output_dir), cfg.output_name or "last",
                        keep=Path(cfg.resume) if cfg.resume else None, log=log)
    return cfg


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
