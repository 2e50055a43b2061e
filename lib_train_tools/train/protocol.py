"""Progress protocol between the trainer subprocess and the job service: JSON lines, version 1.

The trainer writes one JSON object per line to standard output, or to the file named by the
`progress_file` option, only through `ProgressWriter`; the job service reads each line only through
`parse_event`. Field names are fixed once published: add fields, never rename or remove them.

Every line carries:
    "v"     protocol version (int, currently 1)
    "type"  event kind (str, one of the kinds below)
    "time"  unix time in seconds when written (float)
Numbers that are not finite (a NaN loss) are written as null.

Event kinds and their fields:
    start       config (dict: the resolved training options), architecture (str: "sd1", "sd2",
                "sdxl", ...), total_steps (int), total_epochs (int or null), steps_per_epoch
                (int or null), device (str or null)
    step        step (int, 1-based optimizer steps done), total_steps (int), epoch (int, 1-based),
                loss (float or null), avg_loss (float or null: moving average), lr (float or null:
                learning rate of the first parameter group), it_per_sec (float or null),
                eta_sec (float or null: estimated seconds left), memory_mb (float or null: peak
                accelerator memory)
    epoch       epoch (int, the one just finished), total_epochs (int or null), avg_loss (float
                or null)
    validation  step (int: optimizer steps done), epoch (int, 1-based: the epoch measured in, or
                just finished), epoch_end (bool: measured at the end of that epoch, so with the
                weights of that epoch's file), loss (float or null: the mean loss over the
                held-out images and their fixed noise/timestep draws; comparable between epochs),
                images (int: held-out images measured), draws (int: draws per image)
    checkpoint  path (str: LoRA file written), step (int or null), epoch (int or null)
    sample      path (str: image written), step (int or null), epoch (int or null),
                prompt (str or null)
    warning     message (str)
    error       kind (str: data, config, out_of_memory, nan, io or internal), message (str),
                hint (str or null: what the user can do about it)
    done        status (str: completed, cancelled or failed), path (str or null: final LoRA
                file), step (int or null: steps done)

Reading never fails: a JSON line of an unknown type becomes `UnknownEvent` (its fields in `data`),
and a line that is not a JSON object becomes `LogEvent` (trainer output noise to show as is).
Fields a reader does not know are ignored, so newer trainers stay readable.

History within version 1 (each addition leaves older readers working): `validation` was added
with the validation loss (`validation_split`); a reader that predates it sees an `UnknownEvent`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar, Optional, Union

PROTOCOL_VERSION = 1
ERROR_KINDS = ("data", "config", "out_of_memory", "nan", "io", "internal")
DONE_STATUSES = ("completed", "cancelled", "failed")


@dataclass(frozen=True)
class StartEvent:
    type: ClassVar[str] = "start"
    config: dict = field(default_factory=dict)
    architecture: str = ""
    total_steps: int = 0
    total_epochs: Optional[int] = None
    steps_per_epoch: Optional[int] = None
    device: Optional[str] = None
    time: Optional[float] = None


@dataclass(frozen=True)
class StepEvent:
    type: ClassVar[str] = "step"
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    loss: Optional[float] = None
    avg_loss: Optional[float] = None
    lr: Optional[float] = None
    it_per_sec: Optional[float] = None
    eta_sec: Optional[float] = None
    memory_mb: Optional[float] = None
    time: Optional[float] = None


@dataclass(frozen=True)
class EpochEvent:
    type: ClassVar[str] = "epoch"
    epoch: int = 0
    total_epochs: Optional[int] = None
    avg_loss: Optional[float] = None
    time: Optional[float] = None


@dataclass(frozen=True)
class ValidationEvent:
    type: ClassVar[str] = "validation"
    step: int = 0
    epoch: int = 0
    epoch_end: bool = True
    loss: Optional[float] = None
    images: int = 0
    draws: int = 0
    time: Optional[float] = None


@dataclass(frozen=True)
class CheckpointEvent:
    type: ClassVar[str] = "checkpoint"
    path: str = ""
    step: Optional[int] = None
    epoch: Optional[int] = None
    time: Optional[float] = None


@dataclass(frozen=True)
class SampleEvent:
    type: ClassVar[str] = "sample"
    path: str = ""
    step: Optional[int] = None
    epoch: Optional[int] = None
    prompt: Optional[str] = None
    time: Optional[float] = None


@dataclass(frozen=True)
class WarningEvent:
    type: ClassVar[str] = "warning"
    message: str = ""
    time: Optional[float] = None


@dataclass(frozen=True)
class ErrorEvent:
    type: ClassVar[str] = "error"
    kind: str = "internal"
    message: str = ""
    hint: Optional[str] = None
    time: Optional[float] = None

    def __post_init__(self) -> None:
        if self.kind not in ERROR_KINDS:
            raise ValueError(f"error kind {self.kind!r} is not one of {', '.join(ERROR_KINDS)}")


@dataclass(frozen=True)
class DoneEvent:
    type: ClassVar[str] = "done"
    status: str = "completed"
    path: Optional[str] = None
    step: Optional[int] = None
    time: Optional[float] = None

    def __post_init__(self) -> None:
        if self.status not in DONE_STATUSES:
            raise ValueError(f"done status {self.status!r} is not one of {', '.join(DONE_STATUSES)}")


@dataclass(frozen=True)
class LogEvent:
    """A line that was not a protocol event (library output, a traceback line)."""

    type: ClassVar[str] = "log"
    line: str = ""
    time: Optional[float] = None


@dataclass(frozen=True)
class UnknownEvent:
    """A JSON event of a kind this reader does not know (written by a newer trainer)."""

    type_name: str = ""
    data: dict = field(default_factory=dict)
    time: Optional[float] = None

    @property
    def type(self) -> str:
        return self.type_name


KNOWN_EVENTS = (StartEvent, StepEvent, EpochEvent, ValidationEvent, CheckpointEvent, SampleEvent, WarningEvent,
                ErrorEvent, DoneEvent)
EVENT_TYPES: dict[str, type] = {cls.type: cls for cls in KNOWN_EVENTS}
Event = Union[StartEvent, StepEvent, EpochEvent, ValidationEvent, CheckpointEvent, SampleEvent, WarningEvent,
              ErrorEvent, DoneEvent, LogEvent, UnknownEvent]


def event_to_dict(event: Any, now: float | None = None) -> dict[str, Any]:
    """The JSON object of one event: version, type, time (now if the event has none), fields."""
    if not isinstance(event, KNOWN_EVENTS):
        raise TypeError(f"only protocol events can be written, not {type(event).__name__}")
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "time"}
    stamp = event.time if event.time is not None else (time.time() if now is None else now)
    return {"v": PROTOCOL_VERSION, "type": event.type, "time": stamp, **_finite(fields)}


def event_to_json(event: Any, now: float | None = None) -> str:
    """One line of JSON (no newline); ASCII-only so any console encoding can carry it.

    Values JSON has no type for (a Path in the config) are written as their text, so reporting
    progress can never stop a run.
    """
    return json.dumps(event_to_dict(event, now), ensure_ascii=True, allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    """Replace NaN/inf by None, recursively: strict JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def parse_event(line: str) -> Event:
    """Read one line; never raises. Non-JSON lines become LogEvent, unknown kinds UnknownEvent."""
    text = line.rstrip("\r\n")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return LogEvent(line=text)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return LogEvent(line=text)
    stamp = data.get("time")
    stamp = float(stamp) if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) else None
    cls = EVENT_TYPES.get(data["type"])
    if cls is None:
        rest = {k: v for k, v in data.items() if k not in ("v", "type", "time")}
        return UnknownEvent(type_name=data["type"], data=rest, time=stamp)
    names = {f.name for f in dataclasses.fields(cls)} - {"time"}
    try:
        return cls(**{k: v for k, v in data.items() if k in names}, time=stamp)
    except (TypeError, ValueError):
        # A known kind with values this reader rejects (an unknown error kind): keep it, unparsed.
        rest = {k: v for k, v in data.items() if k not in ("v", "type", "time")}
        return UnknownEvent(type_name=data["type"], data=rest, time=stamp)


class ProgressWriter:
    """Writes events as JSON lines to a stream or a file path, flushing after every line.

    A path is opened for appending (UTF-8) and closed by `close()` or the `with` block; a stream
    passed in is flushed but left open. Writing is serialised so lines from threads never interleave.
    """

    def __init__(self, stream_or_path: Union[IO[str], str, "os.PathLike[str]"]) -> None:
        self._lock = threading.Lock()
        if isinstance(stream_or_path, (str, os.PathLike)):
            self._stream: IO[str] = open(stream_or_path, "a", encoding="utf-8", newline="\n")
            self._owns_stream = True
        else:
            self._stream = stream_or_path
            self._owns_stream = False

    def write(self, event: Any) -> None:
        line = event_to_json(event) + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    def warning(self, message: str) -> None:
        self.write(WarningEvent(message=message))

    def error(self, kind: str, message: str, hint: str | None = None) -> None:
        self.write(ErrorEvent(kind=kind, message=message, hint=hint))

    def close(self) -> None:
        with self._lock:
            if self._owns_stream and not self._stream.closed:
                self._stream.close()

    def __enter__(self) -> "ProgressWriter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
