"""The live loss chart: an inline SVG of the loss per step and its smoothed curve, for a gr.HTML.

No plotting library: the SVG is a few polylines, so it renders the same in gradio 3 and 4 and
in the WebUI. The smoothed curve is an exponential moving average with the start-up bias taken
out (weight ``SMOOTHING`` on the previous value, as TensorBoard's smoothing slider), so its
first point is the first loss. Long runs are thinned to at most ``MAX_POINTS`` points per curve
(each kept point is the mean of its stretch of steps); dashed lines mark the epochs. The validation
loss (measured on held-out images over fixed draws, so its points compare with each other) is its
own line, a dot per measurement, on the same axes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

SMOOTHING = 0.9
MAX_POINTS = 400
WIDTH, HEIGHT = 640, 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 12, 24, 28
MAX_EPOCH_LINES = 60
RAW_COLOUR, SMOOTH_COLOUR, VALIDATION_COLOUR = "#7fa7e0", "#e8590c", "#2f9e44"


def smoothed(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """Debiased exponential moving average: ``ema = w * ema + (1 - w) * x``, divided by ``1 - w**n``."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out, ema = [], 0.0
    for n, value in enumerate(values, start=1):
        ema = weight * ema + (1 - weight) * value
        out.append(ema / (1 - weight ** n))
    return out


def thinned(points: Sequence[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most ``limit`` points: consecutive stretches replaced by their mean step and mean value."""
    if len(points) <= limit:
        return [(float(x), float(y)) for x, y in points]
    out = []
    for i in range(limit):
        chunk = points[i * len(points) // limit:(i + 1) * len(points) // limit]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    return out


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class _Scale:
    """Maps (step, loss) to SVG coordinates inside the plot area."""

    def __init__(self, x_max: float, y_min: float, y_max: float) -> None:
        pad = (y_max - y_min) * 0.05 or abs(y_max) * 0.1 or 1.0
        self.x_max, self.y_low, self.y_high = max(x_max, 1.0), y_min - pad, y_max + pad
        self.left, self.right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM

    def x(self, step: float) -> float:
        return self.left + (self.right - self.left) * step / self.x_max

    def y(self, value: float) -> float:
        return self.bottom - (self.bottom - self.top) * (value - self.y_low) / (self.y_high - self.y_low)

    def polyline(self, points: Sequence[tuple[float, float]], colour: str, width: float, css: str) -> str:
        coords = " ".join(f"{self.x(s):.1f},{self.y(v):.1f}" for s, v in points)
        return (f'<polyline class="{css}" fill="none" stroke="{colour}" stroke-width="{width}" '
                f'stroke-linejoin="round" points="{coords}"/>')


def _finite(points: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(s, v) for s, v in points if v == v and abs(v) != float("inf")]  # no NaN or infinities


def loss_chart_svg(losses: Sequence[tuple[int, float]], total_steps: int = 0, steps_per_epoch: int | None = None,
                   weight: float = SMOOTHING, validation: Sequence[tuple[int, float]] = ()) -> str:
    """The chart for ``losses`` ((step, loss) pairs) on an x axis up to ``total_steps``, with the
    ``validation`` losses ((step, loss) of each measurement) as a line of their own."""
    points, checks = _finite(losses), sorted(_finite(validation))
    if not points:
        return '<div class="tt-chart-empty">The loss chart appears with the first training steps.</div>'
    smooth = list(zip((s for s, _ in points), smoothed([v for _, v in points], weight)))
    raw_shown, smooth_shown = thinned(points), thinned(smooth)
    values = [v for _, v in raw_shown] + [v for _, v in checks]
    scale = _Scale(max(total_steps, points[-1][0], checks[-1][0] if checks else 0), min(values), max(values))
    parts = [_epoch_lines(scale, steps_per_epoch), _axes(scale),
             scale.polyline(raw_shown, RAW_COLOUR, 1, "tt-loss-raw"),
             scale.polyline(smooth_shown, SMOOTH_COLOUR, 2, "tt-loss-smooth"), _validation_line(scale, checks),
             _legend(smooth[-1][1], weight, checks[-1][1] if checks else None)]
    extra = f' data-validation-points="{len(checks)}" data-last-validation="{_fmt(checks[-1][1])}"' if checks else ""
    return (f'<svg class="tt-loss-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="100%" role="img" data-points="{len(points)}" data-last-smoothed="{_fmt(smooth[-1][1])}"{extra} '
            f'aria-label="loss per step and smoothed, {len(points)} steps'
            f'{f", validation loss at {len(checks)} points" if checks else ""}">{"".join(parts)}</svg>')


def _validation_line(scale: _Scale, checks: Sequence[tuple[int, float]]) -> str:
    """The validation losses: a line through them (when there are two or more) and a dot at each."""
    if not checks:
        return ""
    line = scale.polyline(checks, VALIDATION_COLOUR, 2, "tt-loss-validation") if len(checks) > 1 else ""
    dots = "".join(f'<circle class="tt-loss-validation-point" cx="{scale.x(s):.1f}" cy="{scale.y(v):.1f}" r="3" '
                   f'fill="{VALIDATION_COLOUR}"><title>step {s}: validation loss {_fmt(v)}</title></circle>'
                   for s, v in checks)
    return line + dots


def _axes(scale: _Scale) -> str:
    text = 'font-size="11" fill="currentColor"'
    return "".join([
        f'<line x1="{scale.left}" y1="{scale.bottom}" x2="{scale.right}" y2="{scale.bottom}" stroke="currentColor" '
        'stroke-opacity="0.5"/>',
        f'<line x1="{scale.left}" y1="{scale.top}" x2="{scale.left}" y2="{scale.bottom}" stroke="currentColor" '
        'stroke-opacity="0.5"/>',
        f'<text x="{scale.left - 4}" y="{scale.top + 4}" text-anchor="end" {text}>{_fmt(scale.y_high)}</text>',
        f'<text x="{scale.left - 4}" y="{scale.bottom}" text-anchor="end" {text}>{_fmt(scale.y_low)}</text>',
        f'<text x="{scale.left}" y="{HEIGHT - 8}" {text}>0</text>',
        f'<text x="{scale.right}" y="{HEIGHT - 8}" text-anchor="end" {text}>step {int(scale.x_max)}</text>',
    ])


def _epoch_lines(scale: _Scale, steps_per_epoch: int | None) -> str:
    if not steps_per_epoch or steps_per_epoch <= 0 or scale.x_max / steps_per_epoch > MAX_EPOCH_LINES:
        return ""
    lines = []
    step = steps_per_epoch
    while step < scale.x_max:
        x = scale.x(step)
        lines.append(f'<line class="tt-epoch-line" x1="{x:.1f}" y1="{scale.top}" x2="{x:.1f}" y2="{scale.bottom}" '
                     'stroke="currentColor" stroke-opacity="0.25" stroke-dasharray="3 3"/>')
        step += steps_per_epoch
    return "".join(lines)


def _legend(last_smoothed: float, weight: float, last_validation: float | None = None) -> str:
    text = 'font-size="11" fill="currentColor"'
    label = html.escape(f"smoothed ({weight:g}): {_fmt(last_smoothed)}")
    legend = (f'<line x1="{MARGIN_LEFT}" y1="10" x2="{MARGIN_LEFT + 18}" y2="10" stroke="{RAW_COLOUR}" '
              f'stroke-width="2"/><text x="{MARGIN_LEFT + 22}" y="14" {text}>loss per step</text>'
              f'<line x1="{MARGIN_LEFT + 120}" y1="10" x2="{MARGIN_LEFT + 138}" y2="10" stroke="{SMOOTH_COLOUR}" '
              f'stroke-width="2"/><text x="{MARGIN_LEFT + 142}" y="14" {text}>{label}</text>')
    if last_validation is None:
        return legend
    x = MARGIN_LEFT + 330
    return legend + (f'<line x1="{x}" y1="10" x2="{x + 18}" y2="10" stroke="{VALIDATION_COLOUR}" stroke-width="2"/>'
                     f'<text x="{x + 22}" y="14" {text}>{html.escape(f"validation: {_fmt(last_validation)}")}</text>')
