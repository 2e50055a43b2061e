"""The validation loss on the Train tab: its own line in the loss chart, and the latest value in the numbers."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from lib_train_tools.ui.loss_chart import HEIGHT, MARGIN_BOTTOM, MARGIN_TOP, loss_chart_svg
from lib_train_tools.ui.progress_view import progress_numbers


def _points(svg: str, css: str) -> list[tuple[float, float]]:
    coords = re.search(rf'class="{css}"[^>]*points="([^"]+)"', svg).group(1)
    return [tuple(map(float, pair.split(","))) for pair in coords.split()]


def test_the_validation_loss_is_a_line_of_its_own_on_the_same_axes():
    losses = [(1, 0.5), (2, 0.3), (3, 0.4), (4, 0.1)]
    svg = loss_chart_svg(losses, total_steps=8, steps_per_epoch=2, validation=[(4, 0.9), (2, 0.35), (6, 0.05)])
    line = _points(svg, "tt-loss-validation")
    raw = _points(svg, "tt-loss-raw")
    assert len(line) == 3 and 'data-validation-points="3"' in svg and 'data-last-validation="0.05"' in svg
    assert [x for x, _ in line] == sorted(x for x, _ in line)  # by step
    assert line[0][0] == raw[1][0]  # step 2 at the same x as the training loss of step 2
    # the y range now spans 0.05..0.9: the highest validation point is at the top, the lowest at the bottom
    top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
    pad = (0.9 - 0.05) * 0.05
    assert line[1][1] == pytest.approx(top + (bottom - top) * pad / (0.85 + 2 * pad), abs=0.1)
    assert line[2][1] == pytest.approx(bottom - (bottom - top) * pad / (0.85 + 2 * pad), abs=0.1)
    assert svg.count('class="tt-loss-validation-point"') == 3 and "validation: 0.05" in svg


def test_without_validation_the_chart_is_as_before():
    losses = [(1, 0.5), (2, 0.3)]
    svg = loss_chart_svg(losses, total_steps=4)
    assert svg == loss_chart_svg(losses, total_steps=4, validation=[(3, float("nan"))])
    assert "tt-loss-validation" not in svg and "data-validation-points" not in svg
    one = loss_chart_svg(losses, total_steps=4, validation=[(2, 0.4)])
    assert 'class="tt-loss-validation"' not in one and one.count("tt-loss-validation-point") == 1  # a dot, no line


def test_the_numbers_show_the_latest_validation_loss():
    progress = SimpleNamespace(total_steps=8, step=4, total_epochs=2, epoch=1, loss=0.5, avg_loss=0.45,
                               it_per_sec=None, eta_sec=None, status="running",
                               validation_losses=[(2, 0.41), (4, 0.3812)])
    assert "validation loss 0.3812" in progress_numbers(progress)
    progress.validation_losses = []
    assert not any("validation" in part for part in progress_numbers(progress))
