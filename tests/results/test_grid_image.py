"""Tests for the labelled grid image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFont

from lib_train_tools.results.grid_image import BACKGROUND, GridError, compose_grid, load_font, plan_grid

CELL = 256  # not enlarged (see test_small_cells_are_enlarged_crisply)
COLOURS = [[(200, 0, 0), (0, 200, 0), (0, 0, 200)], [(200, 200, 0), (0, 200, 200), (200, 0, 200)]]


def _cells(size=(CELL, CELL)):
    cells = []
    for row in COLOURS:
        line = []
        for colour in row:
            image = Image.new("RGB", size, colour)
            image.putpixel((3, 5), (255, 255, 255))      # so a shifted paste would not match
            line.append(image)
        cells.append(line)
    return cells


def _ink(grid: Image.Image, box) -> int:
    """Pixels in ``box`` that are not background (drawn text)."""
    band = np.asarray(grid.crop(box))
    return int((band != np.array(BACKGROUND, dtype=np.uint8)).any(axis=2).sum())


def test_cells_sit_in_their_boxes_and_every_label_is_drawn() -> None:
    cells, rows, cols = _cells(), ["epoch 1", "epoch 2"], ["weight 0", "weight 0.5", "weight 1"]
    font = load_font(12)
    grid = compose_grid(cells, rows, cols, title="a red cube, masterpiece", font=font)
    layout = plan_grid(2, 3, CELL, CELL, rows, cols, "a red cube, masterpiece", (), font)
    assert grid.size == layout.size == (layout.left + 3 * CELL, layout.top + 2 * CELL)
    assert layout.left > 0 and layout.title_height > 0 and layout.header_height > 0 and layout.group_height == 0
    for r in range(2):
        for c in range(3):
            assert np.array_equal(np.asarray(grid.crop(layout.cell_box(r, c))), np.asarray(cells[r][c]))
            x0, y0, x1, y1 = layout.cell_box(r, c)
            assert _ink(grid, (x0, layout.title_height, x1, layout.top)) > 10        # column label
        _, y0, _, y1 = layout.cell_box(r, 0)
        assert _ink(grid, (0, y0, layout.left, y1)) > 10                              # row label
    assert _ink(grid, (0, 0, grid.width, layout.title_height)) > 10                    # title
    assert _ink(grid, (0, layout.title_height, layout.left, layout.top)) == 0          # empty corner


def test_column_groups_for_several_seeds() -> None:
    cells = [[Image.new("RGB", (CELL, CELL), (90, 90, 90))] * 4]
    groups = [("weight 0.5", 2), ("weight 1", 2)]
    font = load_font(12)
    grid = compose_grid(cells, ["epoch 1"], ["seed 1", "seed 2"] * 2, column_groups=groups, font=font)
    layout = plan_grid(1, 4, CELL, CELL, ["epoch 1"], ["seed 1", "seed 2"] * 2, "", groups, font)
    assert layout.title_height == 0 and layout.group_height > 0 and grid.size == layout.size
    for index in range(2):
        x0, _, _, _ = layout.cell_box(0, 2 * index)
        assert _ink(grid, (x0, 0, x0 + 2 * CELL, layout.group_height)) > 10
    with pytest.raises(GridError, match="span 3"):
        compose_grid(cells, ["epoch 1"], ["a", "b", "c", "d"], column_groups=[("w", 3)])


def test_bitmap_font_and_long_or_foreign_text() -> None:
    """Pillow 9.5 (A1111) has only the Latin-1 bitmap font: other scripts must not fail there."""
    bitmap = ImageFont.load_default_imagefont() if hasattr(ImageFont, "load_default_imagefont") \
        else ImageFont.load_default()
    title = "猫耳の少女、桜の木の下で " * 20
    for font in (bitmap, load_font(14)):
        grid = compose_grid(_cells(), ["エポック 1", "epoch 2"], ["weight 0", "weight 0.5", "weight 1"],
                            title=title, font=font)
        layout = plan_grid(2, 3, CELL, CELL, ["エポック 1", "epoch 2"], ["weight 0", "weight 0.5", "weight 1"],
                           title, (), font)
        assert grid.size == layout.size
        assert layout.title_height < 6 * 40     # at most three wrapped title lines


def test_uneven_cells_are_centred_and_bad_tables_refused() -> None:
    small, big = Image.new("RGB", (32, 32), (0, 0, 0)), Image.new("RGB", (64, 48), (10, 10, 10))
    grid = compose_grid([[small, big], [None, small]], ["a", "b"], ["x", "y"])
    assert grid.width > 128 and grid.height > 96
    with pytest.raises(GridError, match="row labels"):
        compose_grid([[small]], ["a", "b"], ["x"])
    with pytest.raises(GridError, match="row 1 has 1 cells"):
        compose_grid([[small]], ["a"], ["x", "y"])
    with pytest.raises(GridError, match="every cell is empty"):
        compose_grid([[None]], ["a"], ["x"])


@pytest.mark.parametrize("columns, factor", [(3, 4), (10, 2), (30, 1)])
def test_small_cells_are_enlarged_crisply_within_the_display_width(columns, factor) -> None:
    from lib_train_tools.results.grid_image import DISPLAY_WIDTH, crisp_factor

    assert crisp_factor(64, columns) == factor
    cell = Image.new("RGB", (64, 64), (20, 40, 60))
    cell.putpixel((3, 5), (255, 255, 255))
    grid = compose_grid([[cell] * columns], ["epoch 1"], [f"w{i}" for i in range(columns)], font=load_font(12))
    layout = plan_grid(1, columns, 64 * factor, 64 * factor, ["epoch 1"], [f"w{i}" for i in range(columns)], "",
                       (), load_font(12))
    assert grid.size == layout.size and columns * 64 * factor <= max(DISPLAY_WIDTH, columns * 64)
    shown = np.asarray(grid.crop(layout.cell_box(0, 0)))
    # nearest-neighbour: every source pixel became a factor x factor block, no blended edges
    assert np.array_equal(shown, np.asarray(cell.resize((64 * factor, 64 * factor), Image.Resampling.NEAREST)))
    assert set(map(tuple, shown.reshape(-1, 3))) == {(20, 40, 60), (255, 255, 255)}
