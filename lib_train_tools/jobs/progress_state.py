"""The state of a run folded from its progress events, and reading them from the progress file.

`JobProgress.apply(event)` takes the events of `train/protocol.py` one by one (parsed only with
`protocol.parse_event`); the result is what the UI shows: step and epoch counters, the latest loss,
speed and ETA, the loss curve, the validation losses, the checkpoints and samples written, warnings
and the error.

A resumed run appends a second ``start`` to the same file: the counters restart from the resumed
position, while the loss curve, checkpoints, samples and warnings keep the whole history.

`ProgressTail` reads a growing progress file incrementally (only complete lines), so a poller can
call it cheaply while the trainer writes.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..train.protocol import (
    CheckpointEvent,
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    Event,
    SampleEvent,
    StartEvent,
    StepEvent,
    ValidationEvent,
    WarningEvent,
    parse_event,
)

PROGRESS_STATUSES = ("pending", "running", "completed", "cancelled", "failed")
MAX_READ_BYTES = 4 * 2**20  # read a growing file in slices of at most this much per call


@dataclass
class JobProgress:
    """What the progress events of one run say so far."""

    status: str = "pending"  # pending (no start yet), running, then the done status
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    total_epochs: int | None = None
    steps_per_epoch: int | None = None
    loss: float | None = None
    avg_loss: float | None = None
    lr: float | None = None
    it_per_sec: float | None = None
    eta_sec: float | None = None
    memory_mb: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    epoch_losses: list[tuple[int, float]] = field(default_factory=list)
    validation_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) of every measurement
    epoch_validation_losses: list[tuple[int, float]] = field(default_factory=list)  # (epoch, loss) at epoch ends
    checkpoints: list[CheckpointEvent] = field(default_factory=list)
    samples: list[SampleEvent] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: ErrorEvent | None = None
    final_path: str | None = None
    done_status: str | None = None
    architecture: str | None = None
    device: str | None = None
    started_at: float | None = None
    updated_at: float | None = None
    events: int = 0

    @property
    def fraction(self) -> float:
        """Share of the planned steps done, 0..1 (0 before the start event)."""
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def apply(self, event: Event) -> None:
        """Fold one event in; log lines and unknown kinds change nothing but the count."""
        self.events += 1
        if getattr(event, "time", None) is not None:
            self.updated_at = event.time
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def apply_all(self, events: Iterable[Event]) -> JobProgress:
        for event in events:
            self.apply(event)
        return self

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> JobProgress:
        """The state after every complete line of a progress file (empty state when it is missing)."""
        progress = cls()
        ProgressTail(path).read_into(progress)
        return progress

    def snapshot(self) -> JobProgress:
        """An independent copy (lists copied) for another thread to read."""
        return copy.copy(self)._with_copied_lists()

    def _with_copied_lists(self) -> JobProgress:
        for name in ("losses", "epoch_losses", "validation_losses", "epoch_validation_losses", "checkpoints",
                     "samples", "warnings"):
            setattr(self, name, list(getattr(self, name)))
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (events as their field dicts) for the HTTP API."""
        data = {k: v for k, v in vars(self).items() if k not in ("checkpoints", "samples", "error")}
        data["losses"] = [list(p) for p in self.losses]
        data["epoch_losses"] = [list(p) for p in self.epoch_losses]
        data["validation_losses"] = [list(p) for p in self.validation_losses]
        data["epoch_validation_losses"] = [list(p) for p in self.epoch_validation_losses]
        data["checkpoints"] = [_event_fields(e) for e in self.checkpoints]
        data["samples"] = [_event_fields(e) for e in self.samples]
        data["error"] = _event_fields(self.error) if self.error else None
        data["fraction"] = self.fraction
        return data


def _event_fields(event: Any) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}


def _on_start(p: JobProgress, e: StartEvent) -> None:
    p.status, p.done_status, p.error, p.final_path = "running", None, None, None
    p.total_steps, p.total_epochs, p.steps_per_epoch = e.total_steps, e.total_epochs, e.steps_per_epoch
    p.architecture, p.device = e.architecture or None, e.device
    p.eta_sec = p.it_per_sec = None
    if p.started_at is None:
        p.started_at = e.time


def _on_step(p: JobProgress, e: StepEvent) -> None:
    p.status = "running" if p.done_status is None else p.status
    p.step, p.epoch = e.step, e.epoch
    if e.total_steps:
        p.total_steps = e.total_steps
    p.loss, p.avg_loss, p.lr = e.loss, e.avg_loss, e.lr
    p.it_per_sec, p.eta_sec, p.memory_mb = e.it_per_sec, e.eta_sec, e.memory_mb
    if e.loss is not None:
        p.losses.append((e.step, e.loss))


def _on_epoch(p: JobProgress, e: EpochEvent) -> None:
    p.epoch = e.epoch
    if e.total_epochs is not None:
        p.total_epochs = e.total_epochs
    if e.avg_loss is not None:
        p.epoch_losses.append((e.epoch, e.avg_loss))


def _on_validation(p: JobProgress, e: ValidationEvent) -> None:
    """A measurement repeated for the same step or epoch (a resumed run) replaces the earlier one."""
    if e.loss is None:
        return
    p.validation_losses = [v for v in p.validation_losses if v[0] != e.step] + [(e.step, e.loss)]
    if e.epoch_end:
        p.epoch_validation_losses = [v for v in p.epoch_validation_losses if v[0] != e.epoch] + [(e.epoch, e.loss)]


def _on_checkpoint(p: JobProgress, e: CheckpointEvent) -> None:
    # A file written again (the final file of a cancelled, then resumed run) is listed once.
    p.checkpoints = [c for c in p.checkpoints if c.path != e.path] + [e]


def _on_sample(p: JobProgress, e: SampleEvent) -> None:
    p.samples.append(e)


def _on_warning(p: JobProgress, e: WarningEvent) -> None:
    p.warnings.append(e.message)


def _on_error(p: JobProgress, e: ErrorEvent) -> None:
    p.error = e


def _on_done(p: JobProgress, e: DoneEvent) -> None:
    p.status = p.done_status = e.status
    p.final_path = e.path
    if e.step is not None:
        p.step = e.step
    p.eta_sec = None


_HANDLERS: dict[type, Callable[[JobProgress, Any], None]] = {
    StartEvent: _on_start, StepEvent: _on_step, EpochEvent: _on_epoch, ValidationEvent: _on_validation,
    CheckpointEvent: _on_checkpoint,
    SampleEvent: _on_sample, WarningEvent: _on_warning, ErrorEvent: _on_error, DoneEvent: _on_done,
}


class ProgressTail:
    """Reads the complete lines a progress file gained since the last call.

    A last line without its newline is left for the next call (the writer may be halfway
    through it). Not thread-safe: one reader owns a tail.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.offset = 0

    def read_events(self) -> list[Event]:
        """New events since the last call (empty when the file does not exist yet)."""
        events: list[Event] = []
        while True:
            chunk = self._read_chunk()
            end = chunk.rfind(b"\n")
            if end < 0:
                return events
            self.offset += end + 1
            text = chunk[: end + 1].decode("utf-8", errors="replace")
            events += [parse_event(line) for line in text.splitlines() if line.strip()]
            if len(chunk) < MAX_READ_BYTES:
                return events

    def read_into(self, progress: JobProgress) -> list[Event]:
        events = self.read_events()
        progress.apply_all(events)
        return events

    def _read_chunk(self) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                return handle.read(MAX_READ_BYTES)
        except FileNotFoundError:
            return b""
