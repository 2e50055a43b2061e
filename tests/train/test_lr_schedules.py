"""Tests for the learning-rate schedules: equal to diffusers' get_scheduler (test-only dependency)."""

from __future__ import annotations

import pytest
import torch
from diffusers.optimization import get_scheduler

from lib_train_tools.train.lr_schedules import lr_factor, make_scheduler, resolve_warmup
from lib_train_tools.train.params import get_param

CASES = [  # total steps, warm-up, cycles, power, base lr
    (100, 0, 1, 1.0, 1e-4),
    (100, 10, 3, 2.0, 1e-3),
    (37, 5, 4, 0.5, 5e-5),
    (10, 10, 2, 1.0, 1.0),
]


def _lrs(scheduler, optimizer, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _comparable(name: str, total: int, warmup: int) -> bool:
    """constant refuses a warm-up (tested below); diffusers' polynomial divides by zero when every
    step is warm-up (ours holds the end rate, see the spot values)."""
    return not (name == "constant" and warmup) and not (name == "polynomial" and warmup == total)


@pytest.mark.parametrize("name,total,warmup,cycles,power,base_lr", [
    (name, *case) for name in get_param("lr_scheduler").choices for case in CASES
    if _comparable(name, case[0], case[1])
])
def test_schedules_equal_diffusers(name, total, warmup, cycles, power, base_lr) -> None:
    theirs_opt, ours_opt = _optimizer(base_lr), _optimizer(base_lr)
    theirs = get_scheduler(name, theirs_opt, num_warmup_steps=warmup, num_training_steps=total,
                           num_cycles=cycles, power=power)
    ours = make_scheduler(ours_opt, name, total, warmup, num_cycles=cycles, power=power)
    steps = total + 5  # also past the end, where polynomial holds and the cosines differ
    expected = _lrs(theirs, theirs_opt, steps)
    assert _lrs(ours, ours_opt, steps) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    factors = [base_lr * lr_factor(name, s, total, warmup, cycles, power, base_lr) for s in range(steps)]
    assert factors == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_spot_values() -> None:
    assert lr_factor("linear", 5, 10, 0) == pytest.approx(0.5)
    assert lr_factor("cosine", 60, 110, 10) == pytest.approx(0.5)
    assert lr_factor("cosine_with_restarts", 30, 60, 0, num_cycles=2) == pytest.approx(1.0)
    assert lr_factor("constant_with_warmup", 2, 100, 8) == pytest.approx(0.25)
    assert lr_factor("polynomial", 100, 100, 0, base_lr=1e-3) == pytest.approx(1e-4)
    assert lr_factor("polynomial", 10, 10, 10, base_lr=1.0) == pytest.approx(1e-7)


def test_warmup_as_steps_or_ratio() -> None:
    assert resolve_warmup(0.1, 1000) == 100
    assert resolve_warmup(0.05, 30) == 1
    assert resolve_warmup(0, 30) == 0
    assert resolve_warmup(10, 30) == 10
    assert resolve_warmup(1.0, 30) == 1
    with pytest.raises(ValueError, match="2.5 is neither"):
        resolve_warmup(2.5, 30)
    with pytest.raises(ValueError, match="must not be negative"):
        resolve_warmup(-1, 30)
    optimizer = _optimizer(1.0)
    make_scheduler(optimizer, "linear", 100, 0.2)
    assert optimizer.param_groups[0]["lr"] == 0.0
    for _ in range(10):
        optimizer.step()
    assert lr_factor("linear", 10, 100, resolve_warmup(0.2, 100)) == pytest.approx(0.5)


def test_refused_settings_name_the_reason() -> None:
    with pytest.raises(ValueError, match="'constant' has no warm-up"):
        make_scheduler(_optimizer(1e-4), "constant", 100, 10)
    with pytest.raises(ValueError, match="unknown lr_scheduler 'cosine_annealing'"):
        make_scheduler(_optimizer(1e-4), "cosine_annealing", 100)
    with pytest.raises(ValueError, match="must be above its end rate"):
        make_scheduler(_optimizer(1e-8), "polynomial", 100)
