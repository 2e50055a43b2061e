"""Folding progress events into JobProgress, and tailing a progress file as it grows."""

from __future__ import annotations

import json

from lib_train_tools.jobs.progress_state import JobProgress, ProgressTail
from lib_train_tools.train.protocol import (
    CheckpointEvent,
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    SampleEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
    event_to_json,
    parse_event,
)


def run_events(start_step: int = 0, steps: int = 4, done: str = "completed") -> list:
    events = [StartEvent(architecture="sd1", total_steps=4, total_epochs=2, steps_per_epoch=2, device="cpu",
                         time=100.0)]
    for step in range(start_step + 1, steps + 1):
        events.append(StepEvent(step=step, total_steps=4, epoch=(step + 1) // 2, loss=1.0 / step, avg_loss=0.5,
                                lr=1e-4, it_per_sec=2.0, eta_sec=(4 - step) / 2.0, memory_mb=123.0))
        if step == 2:
            events += [EpochEvent(epoch=1, total_epochs=2, avg_loss=0.75),
                       CheckpointEvent(path="/r/x-000001.safetensors", step=2, epoch=1),
                       SampleEvent(path="/r/sample/x.png", step=2, epoch=1, prompt="a cat")]
    events += [WarningEvent(message="keep_tokens is ignored"),
               CheckpointEvent(path="/r/x.safetensors", step=steps, epoch=2),
               DoneEvent(status=done, path="/r/x.safetensors", step=steps, time=200.0)]
    return events


def test_a_completed_run():
    p = JobProgress().apply_all(run_events())
    assert (p.status, p.done_status, p.step, p.total_steps, p.epoch, p.total_epochs) == ("completed", "completed",
                                                                                        4, 4, 2, 2)
    assert p.losses == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25)] and p.epoch_losses == [(1, 0.75)]
    assert [c.path for c in p.checkpoints] == ["/r/x-000001.safetensors", "/r/x.safetensors"]
    assert p.samples[0].prompt == "a cat" and p.warnings == ["keep_tokens is ignored"]
    assert p.final_path == "/r/x.safetensors" and p.eta_sec is None and p.memory_mb == 123.0
    assert (p.architecture, p.device, p.started_at, p.updated_at) == ("sd1", "cpu", 100.0, 200.0)
    assert p.fraction == 1.0


def test_running_and_failed_states():
    events = run_events()
    p = JobProgress().apply_all(events[:3])
    assert p.status == "running" and p.step == 2 and p.fraction == 0.5 and p.eta_sec == 1.0
    p.apply(ErrorEvent(kind="nan", message="the loss became nan", hint="lower the learning rate"))
    p.apply(DoneEvent(status="failed"))
    assert p.status == "failed" and p.error.kind == "nan" and p.error.hint == "lower the learning rate"


def test_a_resumed_run_keeps_its_history():
    first = run_events(steps=2, done="cancelled")
    p = JobProgress().apply_all(first + run_events(start_step=2))
    assert p.status == "completed" and p.step == 4
    assert [s for s, _ in p.losses] == [1, 2, 3, 4]
    assert p.started_at == 100.0
    assert [(c.path, c.step) for c in p.checkpoints] == [("/r/x-000001.safetensors", 2), ("/r/x.safetensors", 4)]


def test_log_lines_and_unknown_events_change_nothing_but_the_count():
    p = JobProgress()
    p.apply(parse_event("Traceback (most recent call last):"))
    p.apply(parse_event(json.dumps({"v": 1, "type": "telemetry", "x": 1})))
    assert p.status == "pending" and p.events == 2


def test_snapshot_is_independent():
    p = JobProgress().apply_all(run_events()[:2])
    copy = p.snapshot()
    p.apply(StepEvent(step=2, total_steps=4, epoch=1, loss=0.3))
    assert len(copy.losses) == 1 and len(p.losses) == 2


def test_to_dict_is_json():
    data = JobProgress().apply_all(run_events()).to_dict()
    again = json.loads(json.dumps(data))
    assert again["checkpoints"][0]["epoch"] == 1 and again["fraction"] == 1.0 and again["error"] is None


def test_tail_reads_only_complete_lines(tmp_path):
    path = tmp_path / "progress.jsonl"
    tail = ProgressTail(path)
    assert tail.read_events() == []
    lines = [event_to_json(e) + "\n" for e in run_events()]
    with open(path, "w", encoding="utf-8") as f:
        f.write(lines[0] + lines[1][:20])
    assert [e.type for e in tail.read_events()] == ["start"]
    with open(path, "a", encoding="utf-8") as f:
        f.write(lines[1][20:] + "".join(lines[2:]))
    rest = tail.read_events()
    assert rest[0].type == "step" and rest[0].step == 1 and rest[-1].type == "done"
    assert tail.read_events() == []
    assert JobProgress.from_file(path).done_status == "completed"
    assert JobProgress.from_file(tmp_path / "missing.jsonl").status == "pending"
