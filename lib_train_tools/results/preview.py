"""The preview grid of a run: every chosen checkpoint (rows) at every LoRA weight (columns).

``render_preview`` asks a ``PreviewRenderer`` (``render(CellRequest) -> PIL.Image``: our own sampler
in the standalone app, the WebUI's txt2img inside the WebUI) for one image per (checkpoint, weight,
seed), then writes, under ``<run_dir>/preview/<timestamp>/``:

    grid.png                        the labelled grid ("epoch 1".. down, "weight 0.5".. across)
    r00_e000001_w0.5_s42.png        one PNG per cell, with its settings as WebUI infotext
    preview.json                    the request and which file is which cell

Several seeds are drawn side by side inside each weight column (a "weight 0.5" band over one
column per seed, labelled "seed 42"), so one image still compares everything. The folder is built
under a hidden temporary name and renamed when complete; a cancelled or failed preview leaves
nothing behind. Seeds of -1 (or None) are drawn at random once per preview, so every cell of a
seed column uses the same noise.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from ..atomic import atomic_write_json, read_json
from ..contracts import PreviewRenderer
from ..models.checkpoint_file import CheckpointError
from ..models.loader import load_architecture
from ..train.config_checks import ConfigError
from ..train.config_toml import flatten_tables, read_toml_file
from ..train.params import PARAMS_BY_NAME
from ..train.sample_images import INFOTEXT_KEY, infotext, save_sample
from ..train.sample_prompts import (
    DEFAULT_CFG_SCALE, DEFAULT_SIZE, DEFAULT_STEPS, MAX_STEPS, MIN_SIZE, SamplePrompt, round_size,
)
from ..train.sampling import FALLBACK_SAMPLER, SAMPLERS
from .grid_image import compose_grid
from .runs import CONFIG_FILE, GRID_FILE, PREVIEW_FOLDER, CheckpointInfo, checkpoint_info, read_run

MANIFEST_FILE = "preview.json"
RANDOM_SEED = -1
_SEED_LIMIT = 2 ** 32
Progress = Callable[[int, int, str], None]
_SD_VERSION_OF_FAMILY = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL"}


class PreviewError(ValueError):
    """A preview that cannot be rendered as asked (bad setting, no checkpoint, no base model)."""


class PreviewCancelled(Exception):
    """The cancel check said stop; nothing was written."""


@dataclass(frozen=True)
class CellRequest:
    """One image: ``base_model`` with the LoRA at ``lora_path`` (None: no LoRA) at ``weight``."""

    base_model: Path
    lora_path: Path | None
    weight: float
    prompt: str
    negative_prompt: str = ""
    sampler: str = FALLBACK_SAMPLER
    steps: int = DEFAULT_STEPS
    cfg_scale: float = DEFAULT_CFG_SCALE
    seed: int = 0
    width: int = DEFAULT_SIZE
    height: int = DEFAULT_SIZE
    clip_skip: int | None = None       # None: 1 (the model's last layer)


@dataclass(frozen=True)
class PreviewRequest:
    """What to render. Empty ``checkpoints``: every epoch file of the run, then its final file.
    ``base_model``/``clip_skip`` None: the run's own (its config.toml)."""

    prompt: str
    negative_prompt: str = ""
    sampler: str = FALLBACK_SAMPLER
    steps: int = DEFAULT_STEPS
    cfg_scale: float = DEFAULT_CFG_SCALE
    seeds: Sequence[int | None] = (RANDOM_SEED,)
    width: int = DEFAULT_SIZE
    height: int = DEFAULT_SIZE
    weights: Sequence[float] = (1.0,)
    checkpoints: Sequence[Path] = ()
    base_model: Path | None = None
    clip_skip: int | None = None

    def __post_init__(self) -> None:
        for name in ("seeds", "weights", "checkpoints"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = _request_problems(self)
        if problems:
            raise PreviewError("preview settings: " + "; ".join(problems))


@dataclass(frozen=True)
class PreviewCell:
    row: int
    col: int
    checkpoint: Path
    epoch: int | None
    weight: float
    seed: int
    path: Path


@dataclass(frozen=True)
class PreviewResult:
    grid_path: Path
    cell_paths: list[Path]          # row by row, weights across, seeds within a weight
    folder: Path
    cells: list[PreviewCell] = field(default_factory=list)


def render_preview(run_dir: Path, request: PreviewRequest, renderer: PreviewRenderer,
                   progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> PreviewResult:
    """Render the grid of ``request`` for the run in ``run_dir``; ``progress(done, total, label)``
    after every cell, ``cancel()`` checked before every cell (True: ``PreviewCancelled``)."""
    run_dir = Path(run_dir)
    rows = _rows(run_dir, request)
    base_model, clip_skip = _run_defaults(run_dir, request)
    _check_families(rows, base_model)
    seeds = [secrets.randbelow(_SEED_LIMIT) if s is None or s < 0 else int(s) for s in request.seeds]
    preview_root = run_dir / PREVIEW_FOLDER
    stamp = time.strftime("%Y%m%d-%H%M%S")
    preview_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f".{stamp}.", suffix=".tmp", dir=preview_root))
    try:
        images, cells = _render_cells(rows, request, seeds, base_model, clip_skip, renderer, work_dir,
                                      progress, cancel)
        col_labels, groups = _column_labels(request.weights, seeds)
        grid = compose_grid(images, [_row_label(c) for c in rows], col_labels, title=_title(request),
                            column_groups=groups)
        grid.save(work_dir / GRID_FILE, format="PNG")
        _write_manifest(work_dir / MANIFEST_FILE, request, base_model, seeds, cells)
        final_dir = _move_into_place(work_dir, preview_root, stamp)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    cells = [replace(c, path=final_dir / c.path.name) for c in cells]
    return PreviewResult(final_dir / GRID_FILE, [c.path for c in cells], final_dir, cells)


def list_previews(run_dir: Path) -> list[dict]:
    """The manifests of a run's finished previews, oldest first, each with its ``folder``."""
    found = []
    for manifest in sorted(Path(run_dir).glob(f"{PREVIEW_FOLDER}/*/{MANIFEST_FILE}")):
        if manifest.parent.name.startswith("."):
            continue    # a preview being written
        try:
            data = read_json(manifest, {})
        except ValueError:
            continue
        if isinstance(data, dict):
            found.append({**data, "folder": str(manifest.parent)})
    return found


def _render_cells(rows: list[CheckpointInfo], request: PreviewRequest, seeds: list[int], base_model: Path,
                  clip_skip: int | None, renderer: PreviewRenderer, work_dir: Path, progress: Progress | None,
                  cancel: Callable[[], bool] | None) -> tuple[list[list[Image.Image]], list[PreviewCell]]:
    total = len(rows) * len(request.weights) * len(seeds)
    done = 0
    if progress:
        progress(0, total, "starting")
    images, cells = [], []
    for row, checkpoint in enumerate(rows):
        line = []
        for weight_index, weight in enumerate(request.weights):
            for seed_index, seed in enumerate(seeds):
                if cancel is not None and cancel():
                    raise PreviewCancelled(f"preview cancelled after {done} of {total} images")
                cell = _cell_request(request, base_model, clip_skip, checkpoint.path, weight, seed)
                image = renderer.render(cell)
                path = work_dir / _cell_name(row, checkpoint, weight, seed)
                _save_cell(image, path, cell)
                line.append(image)
                cells.append(PreviewCell(row, weight_index * len(seeds) + seed_index, checkpoint.path,
                                         checkpoint.epoch, weight, seed, path))
                done += 1
                if progress:
                    progress(done, total, f"{_row_label(checkpoint)}, weight {weight:g}, seed {seed}")
        images.append(line)
    return images, cells


def _cell_request(request: PreviewRequest, base_model: Path, clip_skip: int | None, lora: Path, weight: float,
                  seed: int) -> CellRequest:
    return CellRequest(base_model=base_model, lora_path=lora, weight=weight, prompt=request.prompt,
                       negative_prompt=request.negative_prompt, sampler=request.sampler, steps=request.steps,
                       cfg_scale=request.cfg_scale, seed=seed, width=request.width, height=request.height,
                       clip_skip=clip_skip)


def cell_infotext(cell: CellRequest, size: tuple[int, int] | None = None) -> str:
    """The WebUI infotext of a cell: the prompt with ``<lora:name:weight>``, then the settings."""
    prompt = cell.prompt
    if cell.lora_path is not None:
        prompt = f"{prompt} <lora:{Path(cell.lora_path).stem}:{cell.weight:g}>".strip()
    width, height = size or (cell.width, cell.height)
    return infotext(SamplePrompt(prompt, cell.negative_prompt, width, height, cell.seed, cell.steps,
                                 cell.cfg_scale, cell.sampler))


def _save_cell(image: Image.Image, path: Path, cell: CellRequest) -> None:
    image.info[INFOTEXT_KEY] = cell_infotext(cell, image.size)
    save_sample(image, path, SamplePrompt(cell.prompt))


def _cell_name(row: int, checkpoint: CheckpointInfo, weight: float, seed: int) -> str:
    tag = f"e{checkpoint.epoch:06d}" if checkpoint.kind == "epoch" and checkpoint.epoch is not None \
        else checkpoint.path.stem[-24:]
    return f"r{row:02d}_{tag}_w{weight:g}_s{seed}.png"


def _row_label(checkpoint: CheckpointInfo) -> str:
    if checkpoint.kind == "final":
        return f"epoch {checkpoint.epoch}\n(final)" if checkpoint.epoch is not None else "final"
    if checkpoint.kind == "step" and checkpoint.step is not None:
        return f"step {checkpoint.step}"
    return f"epoch {checkpoint.epoch}" if checkpoint.epoch is not None else checkpoint.path.stem


def _column_labels(weights: Sequence[float], seeds: list[int]) -> tuple[list[str], list[tuple[str, int]]]:
    """(column labels, column groups): one seed -> "weight w" columns; several -> seed columns
    grouped under their weight."""
    if len(seeds) == 1:
        return [f"weight {w:g}" for w in weights], []
    return [f"seed {s}" for _ in weights for s in seeds], [(f"weight {w:g}", len(seeds)) for w in weights]


def _title(request: PreviewRequest) -> str:
    return request.prompt + (f"  |  negative: {request.negative_prompt}" if request.negative_prompt else "")


def _rows(run_dir: Path, request: PreviewRequest) -> list[CheckpointInfo]:
    """The checkpoints to render, as asked or (none asked) the run's epoch files and final file."""
    run = read_run(run_dir)
    if request.checkpoints:
        missing = [str(p) for p in request.checkpoints if not Path(p).is_file()]
        if missing:
            raise PreviewError(f"checkpoint file(s) not found: {', '.join(missing)}")
        known = {c.path.resolve(): c for c in run.all_checkpoints}
        return [known.get(Path(p).resolve()) or checkpoint_info(Path(p)) for p in request.checkpoints]
    rows = [c for c in run.checkpoints if c.kind == "epoch"] + ([run.final] if run.final else [])
    if not rows:
        raise PreviewError(f"{run_dir.name}: the run has no LoRA files to preview yet")
    return rows


def _run_defaults(run_dir: Path, request: PreviewRequest) -> tuple[Path, int | None]:
    """The base model and clip skip: the request's, else the run's config.toml."""
    settings: dict = {}
    if request.base_model is None or request.clip_skip is None:
        try:
            settings, _ = flatten_tables(read_toml_file(str(run_dir / CONFIG_FILE)), PARAMS_BY_NAME)
        except ConfigError:
            settings = {}
    base = request.base_model or settings.get("pretrained_model_name_or_path")
    if not base:
        raise PreviewError(f"{run_dir.name}: no base model given and the run's {CONFIG_FILE} names none")
    if not Path(base).is_file():
        raise PreviewError(f"base model {base} not found")
    clip_skip = request.clip_skip if request.clip_skip is not None else settings.get("clip_skip")
    return Path(base), clip_skip


def _check_families(rows: list[CheckpointInfo], base_model: Path) -> None:
    """Refuse LoRAs made for another model family than the base (their layers would not match).
    Only a .safetensors base is checked: its header is cheap to read."""
    if base_model.suffix.lower() != ".safetensors":
        return
    try:
        family = _SD_VERSION_OF_FAMILY[load_architecture(base_model).family]
    except CheckpointError as exc:
        raise PreviewError(f"base model: {exc}") from exc
    wrong = [f"{c.path.name} ({c.lora.sd_version})" for c in rows
             if c.lora is not None and c.lora.sd_version not in (family, "Unknown")]
    if wrong:
        raise PreviewError(f"the base model {base_model.name} is {family}, but these LoRAs were trained for "
                           f"another family: {', '.join(wrong)}")


def _request_problems(request: PreviewRequest) -> list[str]:
    problems = []
    if not request.prompt.strip():
        problems.append("the prompt is empty")
    if request.sampler not in SAMPLERS:
        problems.append(f"sampler {request.sampler!r} is not one of {', '.join(sorted(SAMPLERS))}")
    if not 1 <= request.steps <= MAX_STEPS:
        problems.append(f"steps must be 1..{MAX_STEPS}, got {request.steps}")
    if not math.isfinite(request.cfg_scale):
        problems.append("CFG scale must be a number")
    for side in ("width", "height"):
        value = getattr(request, side)
        if value < MIN_SIZE or round_size(value) != value:
            problems.append(f"{side} must be a multiple of 8 and at least {MIN_SIZE}, got {value}")
    if not request.seeds:
        problems.append("no seed given")
    elif not all(s is None or (isinstance(s, int) and not isinstance(s, bool)) for s in request.seeds):
        problems.append(f"seeds must be whole numbers (-1: random), got {list(request.seeds)}")
    if not request.weights or not all(isinstance(w, (int, float)) and math.isfinite(w) for w in request.weights):
        problems.append(f"weights must be numbers, got {list(request.weights)}")
    if request.clip_skip is not None and request.clip_skip < 1:
        problems.append(f"clip skip must be >= 1, got {request.clip_skip}")
    return problems


def _move_into_place(work_dir: Path, root: Path, stamp: str) -> Path:
    """Rename the finished folder to ``stamp`` (``stamp-2``, ... when taken, also by a preview
    finishing at the same moment)."""
    number = 1
    while True:
        candidate = root / (stamp if number == 1 else f"{stamp}-{number}")
        number += 1
        if candidate.exists():
            continue
        try:
            os.rename(work_dir, candidate)
        except OSError:
            if candidate.exists() and number < 1000:
                continue
            raise
        return candidate


def _write_manifest(path: Path, request: PreviewRequest, base_model: Path, seeds: list[int],
                    cells: list[PreviewCell]) -> None:
    atomic_write_json(path, {
        "prompt": request.prompt, "negative_prompt": request.negative_prompt, "sampler": request.sampler,
        "steps": request.steps, "cfg_scale": request.cfg_scale, "seeds": seeds, "width": request.width,
        "height": request.height, "weights": list(request.weights), "base_model": str(base_model),
        "created": time.time(), "grid": GRID_FILE,
        "cells": [{"row": c.row, "col": c.col, "checkpoint": c.checkpoint.name, "epoch": c.epoch,
                   "weight": c.weight, "seed": c.seed, "file": c.path.name} for c in cells],
    })
