"""Learning-rate schedules as pure functions of the step, and the LambdaLR built on them.

The factors follow the schedules sd-scripts gets from diffusers/transformers, so a run reproduces
the learning rates of the same sd-scripts config. With `w` warm-up steps and `T` total steps:

* every schedule except `constant` ramps linearly, `step / w`, for `step < w`;
* `constant` 1; `constant_with_warmup` 1 after the warm-up;
* `linear` falls from 1 at `w` to 0 at `T`;
* `cosine` is half a cosine wave from 1 at `w` to 0 at `T` (sd-scripts passes no cycle count here);
* `cosine_with_restarts` runs `num_cycles` such half waves back to back (hard restarts), 0 from `T`;
* `polynomial` decays as `(1 - progress) ** power` from the base rate to an end rate of 1e-7
  (absolute, so the factor's floor is `1e-7 / base_lr`), and stays at the end rate after `T`.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from .params import LR_SCHEDULER_NAMES

SCHEDULER_NAMES = LR_SCHEDULER_NAMES
POLYNOMIAL_END_LR = 1e-7


def resolve_warmup(lr_warmup_steps: float, total_steps: int) -> int:
    """Warm-up in steps: a value below 1 is a fraction of `total_steps` (rounded down), as sd-scripts."""
    if lr_warmup_steps < 0 or total_steps < 0:
        raise ValueError(f"lr_warmup_steps {lr_warmup_steps} and total steps {total_steps} must not "
                         "be negative")
    if lr_warmup_steps < 1:
        return int(lr_warmup_steps * total_steps)
    if lr_warmup_steps != int(lr_warmup_steps):
        raise ValueError(f"lr_warmup_steps {lr_warmup_steps} is neither a fraction below 1 nor a "
                         "whole number of steps")
    return int(lr_warmup_steps)


def lr_factor(name: str, step: int, total_steps: int, warmup_steps: int, num_cycles: int = 1,
              power: float = 1.0, base_lr: float = 1.0) -> float:
    """Multiplier of the base learning rate after `step` scheduler steps.

    `base_lr` only matters for `polynomial`, whose end rate is absolute.
    """
    if name not in SCHEDULER_NAMES:
        raise ValueError(f"unknown lr_scheduler {name!r}; known: {', '.join(SCHEDULER_NAMES)}")
    if name == "constant":
        return 1.0
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if name == "constant_with_warmup":
        return 1.0
    if name == "polynomial":
        return _polynomial(step, total_steps, warmup_steps, power, base_lr)
    if name == "linear":
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if name == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((num_cycles * progress) % 1.0))))


def _polynomial(step: int, total_steps: int, warmup_steps: int, power: float, base_lr: float) -> float:
    if base_lr <= POLYNOMIAL_END_LR:
        raise ValueError(f"polynomial schedule: the learning rate {base_lr} must be above its end "
                         f"rate {POLYNOMIAL_END_LR}")
    end = POLYNOMIAL_END_LR / base_lr
    decay_steps = total_steps - warmup_steps
    if step > total_steps or decay_steps <= 0:
        return end
    remaining = 1.0 - (step - warmup_steps) / decay_steps
    return (1.0 - end) * remaining**power + end


def make_scheduler(optimizer: Optimizer, name: str, total_steps: int, lr_warmup_steps: float = 0,
                   num_cycles: int = 1, power: float = 1.0, last_epoch: int = -1) -> LambdaLR:
    """A LambdaLR for `optimizer` (arguments as the config's lr_scheduler* options).

    The polynomial end rate is relative to the optimizer's default lr, as in diffusers, so every
    parameter group ends at the same fraction of its own rate.
    """
    warmup = resolve_warmup(lr_warmup_steps, total_steps)
    if name == "constant" and warmup > 0:
        raise ValueError("lr_scheduler 'constant' has no warm-up; use 'constant_with_warmup' or set "
                         "lr_warmup_steps to 0")
    base_lr = float(optimizer.defaults.get("lr") or 1.0)

    def factor(step: int) -> float:
        return lr_factor(name, step, total_steps, warmup, num_cycles, power, base_lr)

    factor(0)  # fails now, with the reason, rather than at the first training step
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)
