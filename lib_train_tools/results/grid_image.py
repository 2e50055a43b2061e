"""One image from a table of images, with labelled axes: the preview grid (rows = epochs,
columns = LoRA weights).

Layout, top to bottom: an optional title band (the prompt, wrapped to at most ``TITLE_LINES``
lines), an optional band of column-group labels (each centred over the columns it spans; used for
"weight 0.5" over one column per seed), the column-label band, then the rows, each with its label in
the left band. Cells sit edge to edge; a cell smaller than the largest is centred in its box. Small cells (a
64 px test render) are enlarged by a whole factor with nearest-neighbour sampling, so they stay
crisp instead of being blurred by the browser, up to `CRISP_CELL` pixels wide and never wider in
total than `DISPLAY_WIDTH`; labels are sized to the enlarged cells.

Text uses Pillow's default font: ``ImageFont.load_default(size)`` where the installed Pillow takes a
size (10.1 and later, with FreeType), else the fixed bitmap font (Pillow 9.5 in A1111), which has
only Latin-1 glyphs, so other characters are drawn as "?" there rather than failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

# load_default gives the scalable FreeType font (Pillow >= 10.1) or the fixed bitmap font.
Font = ImageFont.ImageFont | ImageFont.FreeTypeFont

BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (0, 0, 0)
EMPTY_CELL = (230, 230, 230)
TITLE_LINES = 3
MIN_FONT_SIZE = 12
CRISP_CELL = 256      # small cells are enlarged (by a whole factor) towards this width
DISPLAY_WIDTH = 1280  # ... while all the cells of a row stay within this width (the tab's grid)


class GridError(ValueError):
    """Cells and labels that do not make a table."""


@dataclass(frozen=True)
class GridLayout:
    """Where everything goes; ``cell_box(row, col)`` is the pixel box of one cell."""

    rows: int
    cols: int
    cell_width: int
    cell_height: int
    left: int            # width of the row-label band
    title_height: int
    group_height: int
    header_height: int   # column labels

    @property
    def top(self) -> int:
        return self.title_height + self.group_height + self.header_height

    @property
    def size(self) -> tuple[int, int]:
        return self.left + self.cols * self.cell_width, self.top + self.rows * self.cell_height

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        x, y = self.left + col * self.cell_width, self.top + row * self.cell_height
        return x, y, x + self.cell_width, y + self.cell_height


def load_font(size: int) -> Font:
    """Pillow's default font at ``size`` where supported, else its fixed bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: no size argument
        return ImageFont.load_default()


def compose_grid(cells: Sequence[Sequence[Image.Image | None]], row_labels: Sequence[str],
                 col_labels: Sequence[str], title: str = "", column_groups: Sequence[tuple[str, int]] = (),
                 font: Font | None = None) -> Image.Image:
    """The labelled grid of ``cells[row][col]`` (None: an empty grey cell).

    ``column_groups``: (label, number of columns) pairs covering all columns, drawn above the
    column labels. ``font``: default ``load_font`` sized from the cells.
    """
    cell_width, cell_height = _check(cells, row_labels, col_labels, column_groups)
    factor = crisp_factor(cell_width, len(col_labels))
    if factor > 1:
        cells = [[_enlarged(cell, factor) for cell in row] for row in cells]
        cell_width, cell_height = cell_width * factor, cell_height * factor
    font = font or load_font(max(MIN_FONT_SIZE, round(cell_width / 20)))
    layout = plan_grid(len(row_labels), len(col_labels), cell_width, cell_height, row_labels, col_labels,
                       title, column_groups, font)
    grid = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(grid)
    pad, line = _padding(font), _line_height(font)
    width = layout.size[0]
    for index, text in enumerate(_wrap(title, font, width - 2 * pad, TITLE_LINES) if title else []):
        _centred(draw, text, font, (0, pad + index * line, width, pad + (index + 1) * line))
    col = 0
    for label, span in column_groups:
        x0, _, _, _ = layout.cell_box(0, col)
        box = (x0, layout.title_height, x0 + span * cell_width, layout.title_height + layout.group_height)
        _centred_lines(draw, _wrap(label, font, span * cell_width - pad, 2), font, box)
        col += span
    y_header = layout.title_height + layout.group_height
    for col, label in enumerate(col_labels):
        x0, _, x1, _ = layout.cell_box(0, col)
        _centred_lines(draw, _wrap(label, font, cell_width - pad, 3), font, (x0, y_header, x1, layout.top))
    for row, label in enumerate(row_labels):
        _, y0, _, y1 = layout.cell_box(row, 0)
        _centred_lines(draw, label.split("\n"), font, (0, y0, layout.left, y1))
        for col, cell in enumerate(cells[row]):
            _paste(grid, cell, layout.cell_box(row, col))
    return grid


def crisp_factor(cell_width: int, columns: int) -> int:
    """The whole factor small cells are enlarged by: toward `CRISP_CELL`, within `DISPLAY_WIDTH`."""
    if cell_width >= CRISP_CELL:
        return 1
    wanted = -(-CRISP_CELL // cell_width)  # ceil
    room = DISPLAY_WIDTH // max(1, columns * cell_width)
    return max(1, min(wanted, room))


def _enlarged(cell: Image.Image | None, factor: int) -> Image.Image | None:
    if cell is None:
        return None
    return cell.resize((cell.width * factor, cell.height * factor), Image.Resampling.NEAREST)


def plan_grid(rows: int, cols: int, cell_width: int, cell_height: int, row_labels: Sequence[str],
              col_labels: Sequence[str], title: str, column_groups: Sequence[tuple[str, int]],
              font: Font) -> GridLayout:
    """The band sizes for these labels in ``font``."""
    pad, line = _padding(font), _line_height(font)
    left = 2 * pad + max((_text_width(font, part) for label in row_labels for part in label.split("\n")), default=0)
    width = left + cols * cell_width
    title_lines = len(_wrap(title, font, width - 2 * pad, TITLE_LINES)) if title else 0
    header_lines = max((len(_wrap(label, font, cell_width - pad, 3)) for label in col_labels), default=1)
    group_lines = max((len(_wrap(label, font, span * cell_width - pad, 2)) for label, span in column_groups),
                      default=0)
    return GridLayout(
        rows=rows, cols=cols, cell_width=cell_width, cell_height=cell_height, left=left,
        title_height=title_lines * line + 2 * pad if title_lines else 0,
        group_height=group_lines * line + pad if group_lines else 0,
        header_height=header_lines * line + 2 * pad,
    )


def _check(cells, row_labels, col_labels, column_groups) -> tuple[int, int]:
    """The cell size (the largest cell); GridError when the table is ragged or empty."""
    if not cells or len(cells) != len(row_labels):
        raise GridError(f"{len(cells)} rows of cells but {len(row_labels)} row labels (at least one row needed)")
    for index, row in enumerate(cells):
        if len(row) != len(col_labels) or not row:
            raise GridError(f"row {index + 1} has {len(row)} cells but there are {len(col_labels)} column labels")
    if column_groups and sum(span for _, span in column_groups) != len(col_labels):
        raise GridError(f"column groups span {sum(span for _, span in column_groups)} columns, "
                        f"not the {len(col_labels)} there are")
    present = [cell for row in cells for cell in row if cell is not None]
    if not present:
        raise GridError("every cell is empty")
    return max(cell.width for cell in present), max(cell.height for cell in present)


def _paste(grid: Image.Image, cell: Image.Image | None, box: tuple[int, int, int, int]) -> None:
    if cell is None:
        ImageDraw.Draw(grid).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=EMPTY_CELL)
        return
    x = box[0] + (box[2] - box[0] - cell.width) // 2
    y = box[1] + (box[3] - box[1] - cell.height) // 2
    grid.paste(cell.convert("RGB"), (x, y))


def _drawable(text: str, font: Font) -> str:
    """The bitmap font encodes text as Latin-1; anything else would raise, so it becomes "?"."""
    if isinstance(font, ImageFont.FreeTypeFont):
        return text
    return text.encode("latin-1", "replace").decode("latin-1")


def _text_width(font: Font, text: str) -> int:
    left, _, right, _ = font.getbbox(_drawable(text, font))
    return int(right - left)


def _line_height(font: Font) -> int:
    _, top, _, bottom = font.getbbox("Ag|")
    return int(bottom - min(top, 0)) + max(2, _padding(font) // 2)


def _padding(font: Font) -> int:
    size = getattr(font, "size", MIN_FONT_SIZE)
    return max(4, int(size) // 2)


def _wrap(text: str, font: Font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels (long words, e.g. Japanese, break between characters);
    the last of ``max_lines`` lines ends with "..." when text is left over."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if _text_width(font, candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        for char in word:
            if current and _text_width(font, current + char) > width:
                lines.append(current)
                current = ""
            current += char
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and _text_width(font, last + "...") > width:
            last = last[:-1]
        lines = lines[:max_lines - 1] + [last + "..."]
    return lines or [""]


def _centred(draw: ImageDraw.ImageDraw, text: str, font: Font, box: tuple[int, int, int, int]) -> None:
    text = _drawable(text, font)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = box[0] + (box[2] - box[0] - (right - left)) // 2 - left
    y = box[1] + (box[3] - box[1] - (bottom - top)) // 2 - top
    draw.text((x, y), text, fill=TEXT_COLOUR, font=font)


def _centred_lines(draw: ImageDraw.ImageDraw, lines: list[str], font: Font,
                   box: tuple[int, int, int, int]) -> None:
    line = _line_height(font)
    y0 = box[1] + (box[3] - box[1] - line * len(lines)) // 2
    for index, text in enumerate(lines):
        _centred(draw, text, font, (box[0], y0 + index * line, box[2], y0 + (index + 1) * line))
