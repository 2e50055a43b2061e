"""What a run writes: LoRA files (per epoch, per n steps, final) and the resumable training state.

File names follow sd-scripts: ``<name>-<epoch:06d>.safetensors``, ``<name>-step<step:08d>.safetensors``
and ``<name>.safetensors``. The training state (``<name>-state/``) holds the LoRA weights, the
optimizer and scheduler states and the position in the run; with per-step seeding that is all a
resumed run needs to end with the same weights as an uninterrupted one.

Every file is written under a temporary name (``.tt-tmp-...``, ``atomic.temporary_sibling``)
and renamed, so a crash never leaves a half-written file; a failed write removes its temporary, and
the next run removes what a killed one left (``clean_leftovers``). Nothing whose tensors are not all
finite is written (``NonFiniteWeights``), and a write that fails for want of space says how much
was free and needed (``NoSpaceLeft``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import temporary_sibling, temporary_target
from ..network.lora_file import NonFiniteTensors, save_lora
from .config import to_dict
from .config_checks import ConfigError
from .data import summarise_dataset
from .lora_metadata import build_metadata
from .model_hashes import add_sshs_hashes, base_model_hashes
from .state_folders import STATE_FILE, STATE_SUFFIX, newest_complete_state, state_info, state_leftovers

SAVE_DTYPES = {None: torch.float32, "float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
METADATA_BYTES = 256 << 10    # an allowance for a LoRA file's header (tag frequencies)
STATE_INFO_BYTES = 64 << 10   # the same for the state's train_state.json and the pickle's bookkeeping
SPACE_MARGIN = 1 << 20        # below this much spare room a failed write is put down to a full disk
OPTIMIZER_SLOTS = 2           # float32 tensors per parameter in the default optimizer (AdamW) state
# What a write that ran out of room says: errno names, Rust's io::ErrorKind (safetensors), Windows
_DISK_FULL = re.compile(r"os error (28|122)\b|storagefull|quotaexceeded|no space left|disk quota exceeded|"
                        r"not enough space on the disk|disk is full", re.IGNORECASE)
# A torch.save into a path whose write failed (torch's zip writer does not pass the errno on)
_FAILED_WRITE = re.compile(r"unexpected pos|file write failed|failed writing|basic_ios::clear|IoError",
                           re.IGNORECASE)
_WINDOWS_DISK_FULL = (39, 112)  # ERROR_HANDLE_DISK_FULL, ERROR_DISK_FULL
_DISK_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class NonFiniteWeights(RuntimeError):
    """The weights (or optimizer state) to be saved hold NaN or infinite values; nothing was written."""


class NoSpaceLeft(OSError):
    """A save failed because the output folder's file system is full (or over quota)."""

    def __init__(self, folder: Path, free: int | None, needed: int, what: str) -> None:
        have = f"{mib(free)} MiB free, " if free is not None else ""
        super().__init__(errno.ENOSPC, f"no space left on {folder}: {have}this save needs about {mib(needed)} MiB "
                                       f"({what})")
        self.folder, self.free, self.needed, self.what = folder, free, needed, what

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass(frozen=True)
class Position:
    """Where a run is: optimizer steps done, the epoch (from 0) and batches done in that epoch."""

    step: int
    epoch: int
    batch_in_epoch: int


def epoch_file(output_dir: Path, name: str, epoch: int) -> Path:
    return output_dir / f"{name}-{epoch:06d}.safetensors"


def step_file(output_dir: Path, name: str, step: int) -> Path:
    return output_dir / f"{name}-step{step:08d}.safetensors"


def final_file(output_dir: Path, name: str) -> Path:
    return output_dir / f"{name}.safetensors"


def state_dir(output_dir: Path, name: str) -> Path:
    return output_dir / f"{name}{STATE_SUFFIX}"


def mib(n: int | None) -> str:
    """Bytes as MiB for messages: one decimal below 10 MiB."""
    value = (n or 0) / 2**20
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


# ----- what was written, for messages -----
def last_saved_file(session) -> Path | None:
    """The last LoRA file this run wrote (every one written holds finite weights)."""
    return session.last_saved_file


def last_file_note(session) -> str:
    """One sentence naming the last good LoRA file of this run, or saying there is none."""
    path = last_saved_file(session)
    if path is None:
        return "No LoRA file was written by this run before this."
    return f"The last file written, {path}, holds finite weights and is kept."


# ----- failures of a write -----
def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from or during, newest first."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_disk_full(error: BaseException) -> bool:
    """True when ``error`` or one it came from says the disk is full or the quota is used up."""
    for e in exception_chain(error):
        if isinstance(e, OSError) and (e.errno in _DISK_FULL_ERRNOS
                                       or getattr(e, "winerror", None) in _WINDOWS_DISK_FULL):
            return True
        if _DISK_FULL.search(str(e)):
            return True
    return False


def _is_failed_write(error: BaseException) -> bool:
    return any(_FAILED_WRITE.search(str(e)) for e in exception_chain(error) if not isinstance(e, OSError))


def free_bytes(folder: Path) -> int | None:
    """Free space on ``folder``'s file system (or its nearest existing parent's); None if unknown."""
    for candidate in [folder, *folder.parents]:
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def write_failure(error: BaseException, folder: Path, needed: int, what: str) -> OSError | None:
    """The io error to report for a failed write of ``needed`` bytes, or None if ``error`` is not one."""
    full, failed = is_disk_full(error), _is_failed_write(error)
    if not (full or failed):
        return None
    free = free_bytes(folder)
    if full or (free is not None and free < needed + SPACE_MARGIN):
        return NoSpaceLeft(folder, free, needed, what)
    first = str(error).splitlines()[0] if str(error) else ""
    return OSError(errno.EIO, f"writing {what} in {folder} failed: {type(error).__name__}: {first}")


@contextlib.contextmanager
def _reported_write(folder: Path, needed: int, what: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        failure = write_failure(error, folder, needed, what)
        if failure is None:
            raise
        raise failure from error


# ----- LoRA files -----
def lora_bytes(network: torch.nn.Module, dtype: torch.dtype) -> int:
    """About how large the LoRA file of ``network`` is when saved in ``dtype``."""
    size = torch.tensor([], dtype=dtype).element_size()
    return sum(v.numel() * (4 if k.endswith(".alpha") else size) for k, v in network.state_dict().items()) \
        + METADATA_BYTES


def save_checkpoint(session, path: Path, epoch: int, step: int) -> Path:
    """Write the LoRA at ``path`` with kohya metadata for this epoch/step (finite weights only)."""
    cfg = session.cfg
    if session.base_model_hashes is None:  # hashing a multi-GB base file once, at the first save
        session.base_model_hashes = base_model_hashes(cfg.pretrained_model_name_or_path)
    metadata = build_metadata(
        cfg, family=session.models.family, v_prediction=session.models.v_prediction,
        dataset_summary=summarise_dataset(session.dataset), optimizer_desc=session.optimizer_desc,
        session_id=session.session_id, training_started_at=session.started_at, epoch=epoch, steps=step,
        num_epochs=session.plan.epochs, num_batches_per_epoch=session.plan.batches_per_process,
        base_model_path=cfg.pretrained_model_name_or_path, base_model_hashes=session.base_model_hashes,
        resolution=session.resolution, seed=session.seed, max_train_steps=session.plan.total_steps,
        zero_terminal_snr=session.models.zero_terminal_snr)
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = SAVE_DTYPES[cfg.save_precision]
    try:
        with _reported_write(path.parent, lora_bytes(session.network, dtype), path.name):
            save_lora(path, session.network, metadata, dtype, add_hashes=add_sshs_hashes)
    except NonFiniteTensors as error:
        fix = " (save_precision bf16 or float would hold them)" if error.overflow else ""
        raise NonFiniteWeights(f"the LoRA weights are no longer finite at step {step}: {error}{fix}. "
                               f"{last_file_note(session)}") from error
    session.last_saved_file = path
    return path


# ----- the training state -----
def _state_tensors(session) -> dict[str, Any]:
    tensors = {"network": session.network.state_dict(), "optimizer": session.optimizer.state_dict(),
               "scheduler": session.scheduler.state_dict()}
    if session.scaler is not None:
        tensors["scaler"] = session.scaler.state_dict()
    return tensors


def _float_tensors(value: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _float_tensors(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _float_tensors(item, f"{prefix}.{i}")


def _check_state_finite(session, tensors: dict[str, Any], position: Position) -> None:
    found = list(_float_tensors(tensors))
    bad = [name for name, t in found if not bool(torch.isfinite(t).all())]
    if bad:
        shown = ", ".join(bad[:2]) + (f" and {len(bad) - 2} more" if len(bad) > 2 else "")
        raise NonFiniteWeights(f"the training state is no longer finite at step {position.step}: {len(bad)} of "
                               f"{len(found)} tensors are NaN or infinite, e.g. {shown}; it was not written. "
                               f"{last_file_note(session)}")


def _state_info(session, position: Position) -> dict[str, Any]:
    return {"step": position.step, "epoch": position.epoch, "batch_in_epoch": position.batch_in_epoch,
            "seed": session.seed, "session_id": session.session_id, "saved_at": time.time(),
            "config": to_dict(session.cfg)}


def _synced(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _write_state_folder(folder: Path, tensors: dict[str, Any], info: dict[str, Any]) -> None:
    folder.mkdir(parents=True)
    with open(folder / "state.pt", "wb") as handle:  # a file object: a failed write raises OSError (errno)
        torch.save(tensors, handle)
        _synced(handle)
    with open(folder / STATE_FILE, "w", encoding="utf-8") as handle:  # last: it marks the state complete
        handle.write(json.dumps(info, indent=2, default=str))
        _synced(handle)


def _swap_in(new: Path, target: Path) -> None:
    """Put the complete folder ``new`` at ``target``; until the end one of them stays complete."""
    old = None
    if target.exists():
        old = temporary_sibling(target)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_state(session, position: Position) -> Path:
    """Write the resumable state directory atomically (a temporary folder, then a rename)."""
    target = state_dir(session.output_dir, session.output_name)
    tensors = _state_tensors(session)
    _check_state_finite(session, tensors, position)
    needed = sum(t.numel() * t.element_size() for _, t in _float_tensors(tensors)) + STATE_INFO_BYTES
    tmp = temporary_sibling(target)
    with _reported_write(target.parent, needed, f"the training state {target.name}"):
        try:
            _write_state_folder(tmp, tensors, _state_info(session, position))
            _swap_in(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    for leftover in state_leftovers(target.parent, session.output_name):  # older states, now superseded
        shutil.rmtree(leftover, ignore_errors=True)
    return target


def load_state(session, path: str | os.PathLike) -> Position:
    """Restore network, optimizer and scheduler from a state folder; returns where to continue."""
    folder = Path(path)
    info = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    tensors = torch.load(folder / "state.pt", map_location=session.device, weights_only=True)
    session.network.load_state_dict(tensors["network"])
    session.optimizer.load_state_dict(tensors["optimizer"])
    session.scheduler.load_state_dict(tensors["scheduler"])
    if session.scaler is not None and "scaler" in tensors:
        session.scaler.load_state_dict(tensors["scaler"])
    return Position(info["step"], info["epoch"], info["batch_in_epoch"])


def state_seed(path: str | os.PathLike) -> int:
    """The seed a saved run used (a resumed run must use the same one)."""
    return int(json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))["seed"])


def resolve_resume(path: str | os.PathLike) -> tuple[Path, str | None]:
    """The state folder to resume from, and a note when it is not ``path``.

    ``path`` itself when it is complete; otherwise, for ``<dir>/<name>-state``, the newest complete
    state a killed save left next to it. ConfigError when there is none.
    """
    folder = Path(path)
    if state_info(folder) is not None:
        return folder, None
    name = folder.name[:-len(STATE_SUFFIX)] if folder.name.endswith(STATE_SUFFIX) else None
    newest = newest_complete_state(folder.parent, name) if name else None
    if newest is None:
        problem = (f"resume: {folder} holds no complete training state ({STATE_FILE} is missing or unreadable: "
                   "the save that wrote it was interrupted) and no complete earlier state is next to it; "
                   "start a new run instead")
        raise ConfigError([problem])
    info = state_info(newest) or {}  # newest_complete_state read it as complete
    return newest, (f"{folder.name} is missing or incomplete (an interrupted save); resuming from {newest}, "
                    f"the newest complete state (step {info.get('step')})")


# ----- leftovers of killed saves -----
def _is_output_of(target: str, name: str) -> bool:
    """Whether ``target`` is a file or folder this trainer writes for output name ``name``."""
    if target in (f"{name}.safetensors", f"{name}{STATE_SUFFIX}", f"{name}{STATE_SUFFIX}.old"):
        return True
    return re.fullmatch(re.escape(name) + r"-(\d{6}|step\d{8})\.safetensors", target, re.DOTALL) is not None


def our_leftovers(output_dir: Path, name: str) -> list[Path]:
    """Temporary files and folders of this trainer's saves for ``name`` in ``output_dir`` (nothing else)."""
    try:
        entries = sorted(Path(output_dir).iterdir())
    except OSError:
        return []
    found = [p for p in entries if (target := temporary_target(p.name)) is not None and _is_output_of(target, name)]
    return sorted(set(found) | set(state_leftovers(output_dir, name)))


def clean_leftovers(output_dir: Path, name: str, keep: Path | None = None,
                    log: Callable[[str], None] | None = None) -> list[Path]:
    """Remove what killed saves of ``name`` left in ``output_dir`` (except ``keep``); returns what went."""
    kept = keep.resolve() if keep is not None else None
    removed = []
    for path in our_leftovers(output_dir, name):
        if kept is not None and path.resolve() == kept:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed and log is not None:
        log(f"removed {len(removed)} temporary file(s) that an interrupted save left in {output_dir}: "
            + ", ".join(p.name for p in removed))
    return removed


# ----- free space, before training -----
def _optimizer_state_bytes(session) -> int:
    tensors = list(_float_tensors(session.optimizer.state_dict().get("state", {})))
    if tensors:  # resumed: the real state
        return sum(t.numel() * t.element_size() for _, t in tensors)
    trainable = sum(p.numel() for p in session.network.parameters() if p.requires_grad)
    return OPTIMIZER_SLOTS * 4 * trainable


def _planned_lora_files(session, start: Position) -> int:
    cfg, plan = session.cfg, session.plan
    n, m = cfg.save_every_n_epochs, cfg.save_every_n_steps
    epochs = len([e for e in range(start.epoch + 1, plan.epochs) if e % n == 0]) if n else 0
    steps = max(0, (plan.total_steps - 1) // m - start.step // m) if m else 0
    return 1 + epochs + steps


def space_warning(session, start: Position) -> str | None:
    """A warning when the output folder has less free space than this run's planned saves need."""
    dtype = SAVE_DTYPES[session.cfg.save_precision]
    files, lora = _planned_lora_files(session, start), lora_bytes(session.network, dtype)
    state = sum(t.numel() * t.element_size() for t in session.network.state_dict().values())
    state += _optimizer_state_bytes(session) + STATE_INFO_BYTES
    copies = 2 if session.cfg.save_state and files > 1 else 1  # the old state stays until the new one is complete
    needed, free = files * lora + copies * state, free_bytes(session.output_dir)
    if free is None or free >= needed:
        return None
    twice = ", twice while it is replaced" if copies == 2 else ""
    return (f"low disk space on {session.output_dir}: {mib(free)} MiB free, but this run's saves need about "
            f"{mib(needed)} MiB ({files} LoRA file(s) of about {mib(lora)} MiB and the training state of about "
            f"{mib(state)} MiB{twice}); free some space or choose another output_dir, or the run will stop "
            "at the first save that does not fit")
