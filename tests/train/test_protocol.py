"""Tests for the JSON-lines progress protocol: every event kind round-trips, reading never fails."""

from __future__ import annotations

import io
import json

import pytest

from lib_train_tools.train.protocol import (
    PROTOCOL_VERSION,
    CheckpointEvent,
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    LogEvent,
    ProgressWriter,
    SampleEvent,
    StartEvent,
    StepEvent,
    UnknownEvent,
    WarningEvent,
    event_to_json,
    parse_event,
)

EVENTS = [
    StartEvent(config={"network_dim": 16, "output_name": "Ünï"}, architecture="sdxl", total_steps=1200,
               total_epochs=10, steps_per_epoch=120, device="cuda:0"),
    StepEvent(step=5, total_steps=1200, epoch=1, loss=0.125, avg_loss=0.1, lr=1e-4, it_per_sec=1.5,
              eta_sec=797.0, memory_mb=6123.5),
    EpochEvent(epoch=1, total_epochs=10, avg_loss=0.11),
    CheckpointEvent(path="/out/ナルト-000001.safetensors", step=120, epoch=1),
    SampleEvent(path="/out/sample/a.png", step=120, epoch=1, prompt="a cat, 🐱"),
    WarningEvent(message="caption missing for ümlaut.png"),
    ErrorEvent(kind="out_of_memory", message="CUDA out of memory", hint="lower train_batch_size"),
    DoneEvent(status="completed", path="/out/final.safetensors", step=1200),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_every_event_kind_round_trips(event) -> None:
    stream = io.StringIO()
    ProgressWriter(stream).write(event)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    raw = json.loads(line)
    assert raw["v"] == PROTOCOL_VERSION and raw["type"] == event.type
    assert isinstance(raw["time"], float)
    parsed = parse_event(line)
    assert type(parsed) is type(event)
    assert parsed == type(event)(**{**event.__dict__, "time": raw["time"]})


def test_lines_are_ascii_and_non_finite_numbers_become_null() -> None:
    line = event_to_json(StepEvent(step=3, total_steps=9, epoch=1, loss=float("nan"), lr=float("inf")), now=5.0)
    assert line.isascii()
    raw = json.loads(line)
    assert raw["loss"] is None and raw["lr"] is None and raw["time"] == 5.0
    assert parse_event(line).loss is None


def test_writer_to_a_path_appends_one_line_per_event(tmp_path) -> None:
    path = tmp_path / "progress.jsonl"
    with ProgressWriter(str(path)) as writer:
        writer.write(StartEvent(architecture="sd1", total_steps=10))
        writer.warning("düsseldorf")
        writer.error("data", "no images in /data", hint="check train_data_dir")
        writer.write(DoneEvent(status="failed"))
    events = [parse_event(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [e.type for e in events] == ["start", "warning", "error", "done"]
    assert events[1].message == "düsseldorf"
    assert (events[2].kind, events[2].hint) == ("data", "check train_data_dir")
    assert events[3].status == "failed" and events[3].path is None


def test_reading_never_fails() -> None:
    assert parse_event("Loading model... 50%\n") == LogEvent(line="Loading model... 50%")
    assert parse_event("[1, 2]") == LogEvent(line="[1, 2]")
    assert parse_event('{"no_type": 1}') == LogEvent(line='{"no_type": 1}')
    assert parse_event("") == LogEvent(line="")
    future = parse_event('{"v": 2, "type": "heartbeat", "time": 1.0, "loss": 0.2}')  # "validation" exists now
    assert isinstance(future, UnknownEvent)
    assert (future.type, future.data, future.time) == ("heartbeat", {"loss": 0.2}, 1.0)
    odd = parse_event('{"v": 1, "type": "error", "kind": "cosmic_ray", "message": "?"}')
    assert isinstance(odd, UnknownEvent) and odd.data["kind"] == "cosmic_ray"
    newer = parse_event('{"v": 1, "type": "checkpoint", "path": "/a", "new_field": 3}')
    assert newer == CheckpointEvent(path="/a")


def test_invalid_events_are_refused_when_written() -> None:
    with pytest.raises(ValueError, match="error kind 'oops'"):
        ErrorEvent(kind="oops", message="x")
    with pytest.raises(ValueError, match="done status 'finished'"):
        DoneEvent(status="finished")
    with pytest.raises(TypeError, match="LogEvent"):
        event_to_json(LogEvent(line="x"))


def test_values_without_a_json_type_are_written_as_text(tmp_path) -> None:
    line = event_to_json(StartEvent(config={"output_dir": tmp_path, "network_args": ("conv_dim=4",)}))
    config = parse_event(line).config
    assert config == {"output_dir": str(tmp_path), "network_args": ["conv_dim=4"]}
