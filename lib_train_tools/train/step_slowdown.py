"""Notice when training steps suddenly become many times slower: the sign of memory spilling.

When a run needs more VRAM than the card has, recent NVIDIA drivers (536.40 and newer, on Windows)
do not fail with "out of memory": they move allocations into system RAM over PCIe (the "CUDA -
Sysmem Fallback Policy"), and a step that took about a second takes tens of seconds or more. The
run goes on, so nothing tells the user why. On a CPU run the same jump means the system is swapping.

`StepSlowdown` compares each step's time with the median of a baseline (steps 3 to 10 of this
process: the first two include warm-up such as kernel selection and the allocator's growth). When
`SUSTAINED` steps in a row take more than `FACTOR` times the baseline, it reports once. Pure: it only
sees the step times it is given (`first_slowdown` runs it over a list, for tests and reports).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

BASELINE_FIRST, BASELINE_LAST = 3, 10  # 1-based step numbers of this process
FACTOR = 5.0
SUSTAINED = 3


@dataclass(frozen=True)
class Slowdown:
    """The slow steps found: the step (1-based) that completed the streak, its time and the baseline's."""

    step: int
    seconds: float
    baseline: float

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline


@dataclass
class StepSlowdown:
    """Feed it each step's seconds (`add`); it returns a `Slowdown` once, at the first sustained jump."""

    factor: float = FACTOR
    sustained: int = SUSTAINED
    steps: int = 0
    baseline_times: list[float] = field(default_factory=list)
    streak: int = 0
    reported: bool = False

    def add(self, seconds: float) -> Slowdown | None:
        self.steps += 1
        if self.steps < BASELINE_FIRST:
            return None
        if self.steps <= BASELINE_LAST:
            self.baseline_times.append(seconds)
            return None
        if self.reported or not self.baseline_times:
            return None
        baseline = statistics.median(self.baseline_times)
        self.streak = self.streak + 1 if seconds > self.factor * baseline else 0
        if self.streak < self.sustained:
            return None
        self.reported = True
        return Slowdown(self.steps, seconds, baseline)


def first_slowdown(step_times: list[float], factor: float = FACTOR, sustained: int = SUSTAINED) -> Slowdown | None:
    """The slowdown `StepSlowdown` reports for these step times, if any."""
    detector = StepSlowdown(factor, sustained)
    for seconds in step_times:
        found = detector.add(seconds)
        if found is not None:
            return found
    return None


def slowdown_message(found: Slowdown, device_type: str) -> str:
    """The warning with its advice; ``device_type`` is the training device's ("cuda", "mps", "cpu")."""
    head = (f"Training steps became {found.ratio:.0f}x slower at step {found.step} of this run "
            f"({found.seconds:.1f} s instead of about {found.baseline:.2f} s).")
    if device_type == "cuda":
        advice = ("The run probably needs more VRAM than the card has and the driver is spilling it into system "
                  "RAM (NVIDIA's \"CUDA - Sysmem Fallback Policy\"). Lower the memory settings (the Train tab's "
                  "\"Fit my card\" does it) or close other programs that use the GPU, then start again.")
    else:
        advice = ("The system is probably short of memory and swapping. Lower the memory settings (the Train "
                  "tab's \"Fit my card\" does it) or close other programs, then start again.")
    return f"{head} {advice}"
