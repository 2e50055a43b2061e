"""The loss chart: the smoothing's numbers, thinning, and what the SVG holds."""

from __future__ import annotations

import re

import pytest

from lib_train_tools.ui.loss_chart import MAX_POINTS, loss_chart_svg, smoothed, thinned


def test_smoothing_is_a_debiased_moving_average():
    assert smoothed([1.0, 0.0], 0.5) == pytest.approx([1.0, 1 / 3])  # (0.25) / (1 - 0.25)
    assert smoothed([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no start-up bias
    assert smoothed([1.0, 3.0], 0.0) == [1.0, 3.0]  # weight 0: the values themselves
    values = [1.0, 0.0, 1.0, 0.0] * 10
    assert max(smoothed(values, 0.9)[10:]) - min(smoothed(values, 0.9)[10:]) < 0.2  # flattened
    with pytest.raises(ValueError):
        smoothed([1.0], 1.0)


def test_long_runs_are_thinned_to_means():
    points = [(i, float(i % 2)) for i in range(1, 2001)]
    kept = thinned(points, 400)
    assert len(kept) == 400
    assert kept[0] == (pytest.approx(3.0), pytest.approx(0.6))  # steps 1..5: mean step 3, three odd ones
    assert thinned(points[:10], 400) == [(float(s), v) for s, v in points[:10]]


def polyline(svg: str, css: str) -> list[tuple[float, float]]:
    coords = re.search(rf'class="{css}"[^>]*points="([^"]+)"', svg).group(1)
    return [tuple(map(float, pair.split(","))) for pair in coords.split()]


def test_the_svg_draws_each_step_and_the_smoothed_curve():
    losses = [(1, 0.5), (2, 0.3), (3, 0.4), (4, 0.1)]
    svg = loss_chart_svg(losses, total_steps=8, steps_per_epoch=4)
    assert svg.startswith("<svg") and 'data-points="4"' in svg
    raw, smooth = polyline(svg, "tt-loss-raw"), polyline(svg, "tt-loss-smooth")
    assert len(raw) == len(smooth) == 4
    assert raw[0][0] < raw[1][0] < raw[3][0]  # steps left to right
    assert raw[3][1] > raw[0][1]  # the lowest loss is drawn lowest (SVG y grows downwards)
    assert raw[0] == smooth[0]  # the smoothed curve starts at the first loss
    assert f'data-last-smoothed="{smoothed([0.5, 0.3, 0.4, 0.1])[-1]:.4g}"' in svg
    assert svg.count('class="tt-epoch-line"') == 1  # the end of epoch 1 at step 4 of 8
    assert "step 8" in svg


def test_no_steps_yet_and_bad_values():
    assert "appears with the first training steps" in loss_chart_svg([])
    svg = loss_chart_svg([(1, float("nan")), (2, 1.0), (3, float("inf")), (4, 1.0)], 4)
    assert 'data-points="2"' in svg  # NaN and infinity left out; a flat line still draws
    assert len(polyline(svg, "tt-loss-raw")) == 2


def test_a_chart_of_many_steps_stays_small():
    losses = [(i, 1.0 / i) for i in range(1, 20001)]
    svg = loss_chart_svg(losses, 20000, steps_per_epoch=10)
    assert len(polyline(svg, "tt-loss-raw")) == MAX_POINTS
    assert "tt-epoch-line" not in svg  # 2000 epochs: too many lines to draw
    assert len(svg) < 40_000
