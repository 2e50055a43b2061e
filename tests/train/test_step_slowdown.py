"""The step-time jump detector (VRAM spilling into system RAM) on given step times."""

from __future__ import annotations

import pytest

from lib_train_tools.train.step_slowdown import StepSlowdown, first_slowdown, slowdown_message

# steps 1-2 warm up (slow); steps 3-10 about 1.2 s (median 1.2)
WARM = [9.0, 4.0, 1.1, 1.2, 1.3, 1.2, 1.2, 1.1, 1.3, 1.2]


def test_a_sustained_jump_is_reported_once_at_the_third_slow_step():
    times = WARM + [1.2] * 5 + [100.0, 110.0, 120.0, 130.0] + [100.0] * 20
    found = first_slowdown(times)
    assert found is not None
    assert found.step == 18 and found.seconds == 120.0 and found.baseline == pytest.approx(1.2)
    assert found.ratio == pytest.approx(100.0)
    detector = StepSlowdown()
    reports = [detector.add(t) for t in times]
    assert [i + 1 for i, r in enumerate(reports) if r is not None] == [18]  # once, never again


def test_short_spikes_and_moderate_slowdowns_are_not_reported():
    spikes = WARM + [1.2, 50.0, 50.0, 1.2, 50.0, 50.0, 1.2] * 3  # saving/sampling steps: never 3 in a row
    assert first_slowdown(spikes) is None
    moderate = WARM + [5.9] * 30  # 4.9x the baseline: below the factor
    assert first_slowdown(moderate) is None
    assert first_slowdown(WARM + [6.1] * 3).step == 13  # just above 5x


def test_the_warm_up_steps_are_not_the_baseline():
    # a slow first step (kernel selection) and slow steps 3-10 do not make later ones look fast/slow
    assert first_slowdown([60.0, 60.0] + [12.0] * 8 + [13.0] * 10) is None
    # the median ignores one slow baseline step
    assert first_slowdown([1.0, 1.0, 1.0, 30.0] + [1.0] * 6 + [6.0] * 3).step == 13


def test_too_few_steps_report_nothing():
    assert first_slowdown([1.0] * 10) is None
    assert first_slowdown([1.0, 1.0, 100.0, 100.0, 100.0]) is None  # still inside the baseline


def test_custom_factor_and_streak():
    assert first_slowdown(WARM + [3.0, 3.0], factor=2.0, sustained=2).step == 12


def test_the_message_gives_the_advice_per_device():
    found = first_slowdown(WARM + [120.0] * 3)
    text = slowdown_message(found, "cuda")
    assert text.startswith("Training steps became 100x slower at step 13 of this run (120.0 s instead of about 1.20 s).")
    assert "spilling it into system RAM" in text and "Fit my card" in text
    cpu = slowdown_message(found, "cpu")
    assert "swapping" in cpu and "VRAM" not in cpu and "Fit my card" in cpu


def test_the_training_loop_writes_the_warning_event_once(tmp_path, monkeypatch):
    """A tiny run whose step times are replaced by a spilling pattern: one warning event, on its step."""
    from lib_train_tools.models.checkpoint_factory import write_checkpoint
    from lib_train_tools.train import loop
    from lib_train_tools.train.cli import main

    from .test_training_run import events, make_dataset, run_args

    fake = iter(WARM + [1.2, 100.0, 100.0, 100.0, 100.0])

    class Replayed(StepSlowdown):
        def add(self, seconds):
            return super().add(next(fake))

    monkeypatch.setattr(loop, "StepSlowdown", Replayed)
    ckpt = write_checkpoint(tmp_path / "tiny-sd1.safetensors", family="sd1", seed=3)
    data, out = make_dataset(tmp_path), tmp_path / "out"
    assert main(run_args(ckpt, data, out, max_train_steps=15)) == 0
    seen = events(out)
    warnings = [(i, e.message) for i, e in enumerate(seen) if e.type == "warning" and "slower" in e.message]
    assert len(warnings) == 1
    index, message = warnings[0]
    assert message.startswith("Training steps became 83x slower at step 14 of this run")
    assert "swapping" in message  # the tests train on the CPU
    steps_before = [e.step for e in seen[:index] if e.type == "step"]
    assert steps_before[-1] == 13  # written during step 14, before its step event
