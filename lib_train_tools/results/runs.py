"""The training runs of a version, read from their folders: status, settings, checkpoints, images.

A run folder (``<version>/trains/<run>/``) is written by the job service and the trainer:

    job.json                      the job (status, times, grid values); missing in hand-made folders
    config.toml                   the trainer options of the run
    progress.jsonl                protocol events (read only through ``train.protocol.parse_event``)
    <name>-000001.safetensors     a LoRA per saved epoch; ``<name>-step00000100`` per saved step
    <name>.safetensors            the final LoRA
    <name>-state/                 the resumable training state (a killed save may leave it
                                  incomplete, or the complete one under a temporary name)
    sample/*.png                  sample images rendered while training
    preview/<timestamp>/grid.png  preview grids (``results.preview``)

Nothing here imports the job service: the files are the contract. ``state_dir`` is the newest
complete state (``train.state_folders``, as the queue decides what a resume starts from). Reading
never raises for a damaged or half-written file; what could not be read is listed in
``RunInfo.problems``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..train.config_checks import ConfigError
from ..train.config_toml import flatten_tables, read_toml_file
from ..train.params import PARAMS_BY_NAME
from ..train.protocol import (
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    StartEvent,
    StepEvent,
    ValidationEvent,
    WarningEvent,
    parse_event,
)
from ..train.state_folders import newest_complete_state
from .lora_info import LoraInfo, LoraInfoError, read_lora_info
from .suggested_epoch import suggested_checkpoint

JOB_FILE = "job.json"
CONFIG_FILE = "config.toml"
PROGRESS_FILE = "progress.jsonl"
SAMPLE_FOLDER = "sample"
PREVIEW_FOLDER = "preview"
GRID_FILE = "grid.png"
LORA_SUFFIX = ".safetensors"
DEFAULT_OUTPUT_NAME = "last"       # the trainer's name when output_name is unset
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_EPOCH_TAIL = re.compile(r"^-(\d{6})$")
_STEP_TAIL = re.compile(r"^-step(\d{8})$")
_ANY_TAIL = re.compile(r"^(?P<base>.+?)(?P<tail>-\d{6}|-step\d{8})?$")


@dataclass(frozen=True)
class CheckpointInfo:
    """One LoRA file of a run. ``kind``: "epoch", "step" or "final"."""

    path: Path
    epoch: int | None
    step: int | None
    size: int
    mtime: float
    kind: str = "epoch"
    lora: LoraInfo | None = None      # None when the header could not be read


@dataclass(frozen=True)
class ProgressSummary:
    """What the progress file says about a run."""

    done_status: str | None = None     # completed / cancelled / failed (the trainer's last word)
    architecture: str | None = None
    total_steps: int | None = None
    total_epochs: int | None = None
    last_step: int | None = None
    started: float | None = None
    finished: float | None = None
    final_path: str | None = None
    error: ErrorEvent | None = None
    warnings: tuple[str, ...] = ()
    checkpoint_events: tuple[CheckpointEvent, ...] = ()
    validation_losses: tuple[tuple[int, float], ...] = ()  # (epoch, loss) measured at epoch ends, by epoch


@dataclass(frozen=True)
class RunInfo:
    """One training run as the Results panel shows it."""

    name: str
    dir: Path
    status: str                        # job status, else inferred (see ``run_status``)
    output_name: str
    settings: dict[str, Any]           # config.toml values, flat
    checkpoints: list[CheckpointInfo]  # epoch and step files, by epoch then step
    final: CheckpointInfo | None
    samples: list[Path]
    previews: list[Path]               # preview grids, oldest first
    progress: ProgressSummary
    job: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    state_dir: Path | None = None      # the newest complete state folder: what a resume starts from
    problems: tuple[str, ...] = ()

    @property
    def all_checkpoints(self) -> list[CheckpointInfo]:
        """Epoch/step files, then the final file."""
        return self.checkpoints + ([self.final] if self.final else [])

    @property
    def suggested(self) -> CheckpointInfo | None:
        """The LoRA file of the epoch with the lowest validation loss (``suggested_epoch``); None without one."""
        return suggested_checkpoint(self.all_checkpoints, self.progress.validation_losses)


def list_runs(version) -> list[RunInfo]:
    """The runs of ``version`` (a ``projects.layout.VersionPaths``), newest first."""
    return list_runs_in(version.trains)


def list_runs_in(trains_dir: Path) -> list[RunInfo]:
    """The run folders directly under ``trains_dir``, newest first (hidden folders skipped)."""
    trains_dir = Path(trains_dir)
    if not trains_dir.is_dir():
        return []
    runs = [read_run(p) for p in trains_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(runs, key=lambda run: (run.created, run.name), reverse=True)


def read_run(run_dir: Path) -> RunInfo:
    """Everything the files of one run folder say."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    job = _read_job(run_dir / JOB_FILE, problems)
    settings = _read_settings(run_dir / CONFIG_FILE, problems)
    progress = read_progress(run_dir / PROGRESS_FILE)
    output_name = settings.get("output_name") or _guess_output_name(run_dir)
    checkpoints = list_checkpoints(run_dir, output_name, progress)
    final = next((c for c in checkpoints if c.kind == "final"), None)
    problems += [f"{c.path.name}: header unreadable" for c in checkpoints if c.lora is None]
    return RunInfo(
        name=run_dir.name, dir=run_dir, status=run_status(job, progress, final is not None),
        output_name=output_name, settings=settings, checkpoints=[c for c in checkpoints if c.kind != "final"],
        final=final, samples=_images(run_dir / SAMPLE_FOLDER), previews=_preview_grids(run_dir),
        progress=progress, job=job, created=_created(run_dir, job, progress),
        state_dir=newest_complete_state(run_dir, output_name), problems=tuple(problems),
    )


def run_status(job: dict, progress: ProgressSummary, has_final: bool) -> str:
    """The job's status when there is a job.json; otherwise the trainer's ``done`` status, "failed"
    after an error event, "incomplete" when events stop without ``done``, "completed" for a
    hand-made folder holding a final file, else "unknown"."""
    if isinstance(job.get("status"), str):
        return job["status"]
    if progress.done_status:
        return progress.done_status
    if progress.error is not None:
        return "failed"
    if progress.started is not None:
        return "incomplete"
    return "completed" if has_final else "unknown"


def read_progress(path: Path) -> ProgressSummary:
    """Fold the events of a progress file (missing file: an empty summary)."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ProgressSummary()
    values: dict[str, Any] = {}
    warnings, checkpoints = [], []
    validation: dict[int, float] = {}
    for event in map(parse_event, lines):
        if isinstance(event, StartEvent):
            values.update(architecture=event.architecture or None, total_steps=event.total_steps,
                          total_epochs=event.total_epochs, started=event.time)
        elif isinstance(event, StepEvent):
            values["last_step"] = event.step
        elif isinstance(event, CheckpointEvent):
            checkpoints.append(event)
        elif isinstance(event, ValidationEvent) and event.epoch_end and isinstance(event.loss, (int, float)):
            validation[event.epoch] = float(event.loss)  # a resumed run's measurement replaces an earlier one
        elif isinstance(event, WarningEvent):
            warnings.append(event.message)
        elif isinstance(event, ErrorEvent):
            values["error"] = event
        elif isinstance(event, DoneEvent):
            values.update(done_status=event.status, finished=event.time, final_path=event.path)
            if event.step is not None:
                values["last_step"] = event.step
    return ProgressSummary(**values, warnings=tuple(warnings), checkpoint_events=tuple(checkpoints),
                           validation_losses=tuple(sorted(validation.items())))


def list_checkpoints(run_dir: Path, output_name: str, progress: ProgressSummary | None = None) -> list[CheckpointInfo]:
    """The LoRA files of ``output_name`` in ``run_dir`` (epoch, step, final), by epoch then step."""
    events = {Path(e.path).name: e for e in (progress.checkpoint_events if progress else ())}
    found = []
    for path in Path(run_dir).glob(f"*{LORA_SUFFIX}"):
        kind_number = classify_checkpoint(path.name, output_name)
        if kind_number is None or path.name.startswith("."):
            continue
        found.append(_checkpoint_info(path, *kind_number, events.get(path.name), progress))
    order = {"epoch": 0, "step": 0, "final": 1}
    return sorted(found, key=lambda c: (order[c.kind], c.epoch or 0, c.step or 0, c.path.name))


def classify_checkpoint(file_name: str, output_name: str) -> tuple[str, int | None] | None:
    """("epoch", n), ("step", n) or ("final", None) for a file of ``output_name``; None otherwise."""
    if not file_name.endswith(LORA_SUFFIX) or not file_name.startswith(output_name):
        return None
    tail = file_name[len(output_name):-len(LORA_SUFFIX)]
    if tail == "":
        return "final", None
    for kind, pattern in (("epoch", _EPOCH_TAIL), ("step", _STEP_TAIL)):
        match = pattern.match(tail)
        if match:
            return kind, int(match.group(1))
    return None


def checkpoint_info(path: Path, output_name: str | None = None) -> CheckpointInfo:
    """The info of one LoRA file; its kind is read from the name when ``output_name`` is given."""
    path = Path(path)
    kind_number = classify_checkpoint(path.name, output_name or _base_of(path.stem)) or ("final", None)
    return _checkpoint_info(path, *kind_number, None, None)


def _checkpoint_info(path: Path, kind: str, number: int | None, event: CheckpointEvent | None,
                     progress: ProgressSummary | None) -> CheckpointInfo:
    try:
        lora = read_lora_info(path)
    except LoraInfoError:
        lora = None
    stat = path.stat()
    epoch = number if kind == "epoch" else _first(lora and lora.epoch, event and event.epoch)
    step = number if kind == "step" else _first(lora and lora.steps, event and event.step)
    if kind == "final" and step is None and progress is not None:
        step = progress.last_step
    return CheckpointInfo(path, epoch, step, stat.st_size, stat.st_mtime, kind, lora)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None and v is not False), None)


def _read_job(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path.name}: {exc}")
        return {}
    return data if isinstance(data, dict) else {}


def _read_settings(path: Path, problems: list[str]) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        flat, _ = flatten_tables(read_toml_file(str(path)), PARAMS_BY_NAME)
    except ConfigError as exc:
        problems.append(str(exc))
        return {}
    return flat


def _guess_output_name(run_dir: Path) -> str:
    """For folders without config.toml: the base name shared by most LoRA files."""
    files = sorted(p for p in run_dir.glob(f"*{LORA_SUFFIX}") if not p.name.startswith("."))
    bases = Counter(_base_of(p.stem) for p in files)
    return bases.most_common(1)[0][0] if bases else DEFAULT_OUTPUT_NAME


def _base_of(stem: str) -> str:
    match = _ANY_TAIL.match(stem)
    return match.group("base") if match else stem


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def _preview_grids(run_dir: Path) -> list[Path]:
    """Finished preview grids (hidden folders are previews still being written)."""
    grids = run_dir.glob(f"{PREVIEW_FOLDER}/*/{GRID_FILE}")
    return sorted(p for p in grids if not p.parent.name.startswith("."))


def _created(run_dir: Path, job: dict, progress: ProgressSummary) -> float:
    created = job.get("created")
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        return float(created)
    if progress.started is not None:
        return progress.started
    try:
        return run_dir.stat().st_mtime
    except OSError:
        return 0.0
