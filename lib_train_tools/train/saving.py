"""What a run writes: LoRA files (per epoch, per n steps, final) and the resumable training state.

File names follow sd-scripts: ``<name>-<epoch:06d>.safetensors``, ``<name>-step<step:08d>.safetensors``
and ``<name>.safetensors``. The training state (``<name>-state/``) holds the LoRA weights, the
optimizer and scheduler states and the position in the run; with per-step seeding that is all a
resumed run needs to end with the same weights as an uninterrupted one. Every file is written
under a temporary name and renamed, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..network.lora_file import save_lora
from .config import to_dict
from .data import summarise_dataset
from .lora_metadata import build_metadata
from .model_hashes import add_sshs_hashes, base_model_hashes

SAVE_DTYPES = {None: torch.float32, "float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
STATE_FILE = "train_state.json"


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
    return output_dir / f"{name}-state"


def save_checkpoint(session, path: Path, epoch: int, step: int) -> Path:
    """Write the LoRA at ``path`` with kohya metadata for this epoch/step."""
    cfg = session.cfg
    if session.base_model_hashes is None:  # hashing a multi-GB base file once, at the first save
        session.base_model_hashes = base_model_hashes(cfg.pretrained_model_name_or_path)
    metadata = build_metadata(
        cfg, family=session.models.family, v_prediction=session.models.v_prediction,
        dataset_summary=summarise_dataset(session.dataset), optimizer_desc=session.optimizer_desc,
        session_id=session.session_id, training_started_at=session.started_at, epoch=epoch, steps=step,
        num_epochs=session.plan.epochs, num_batches_per_epoch=session.plan.batches_per_process,
        base_model_path=cfg.pretrained_model_name_or_path, base_model_hashes=session.base_model_hashes,
        resolution=session.resolution, seed=session.seed, max_train_steps=session.plan.total_steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_lora(path, session.network, metadata, SAVE_DTYPES[cfg.save_precision], add_hashes=add_sshs_hashes)
    return path


def save_state(session, position: Position) -> Path:
    """Write the resumable state directory atomically (a temporary folder, then a rename)."""
    target = state_dir(session.output_dir, session.output_name)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = {"network": session.network.state_dict(), "optimizer": session.optimizer.state_dict(),
               "scheduler": session.scheduler.state_dict()}
    if session.scaler is not None:
        tensors["scaler"] = session.scaler.state_dict()
    torch.save(tensors, tmp / "state.pt")
    info = {"step": position.step, "epoch": position.epoch, "batch_in_epoch": position.batch_in_epoch,
            "seed": session.seed, "session_id": session.session_id, "saved_at": time.time(),
            "config": to_dict(session.cfg)}
    (tmp / STATE_FILE).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
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
