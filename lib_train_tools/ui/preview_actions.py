"""Handlers of the Results tab's preview grid: the form, rendering, and earlier previews.

Plain functions (no gradio). Output groups: ``FORM`` (prompt ... weights, filled from the version's
settings), ``EPOCHS`` (which LoRA files become rows) and ``SHOWN`` (the list of the run's previews,
the grid image, the per-cell gallery, the shown preview's settings and its folder name).

Rendering runs in one of the queue's workers with a progress bar, so the rest of the page keeps
working. It is allowed while a training job runs (it slows the training down, and the page says
so); the renderer's cached model is then let go as soon as the grid is done, as the trainer needs
the memory. The weight-0 column is rendered once per seed and reused for every row
(``results.base_cells``).
"""

from __future__ import annotations

import html
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..results.base_cells import ReuseBaseCells
from ..results.outcomes import read_outcomes
from ..results.preview import PreviewRequest, list_previews, render_preview
from ..results.runs import GRID_FILE, PREVIEW_FOLDER, RunInfo
from ..run_hooks import preview_defaults
from ..train.sampling import SAMPLERS
from .replies import Reply, choices, info, ok

if TYPE_CHECKING:
    from ..services import Services

FORM = ("prompt", "negative", "sampler", "steps", "cfg", "seeds", "width", "height", "weights")
EPOCHS = ("epochs",)
SHOWN = ("earlier", "grid", "cells", "info", "folder")
SAMPLER_CHOICES = sorted(SAMPLERS)
DEFAULT_WEIGHTS = "0, 0.5, 1"
AUTO_MARK = " (when training ended)"
ProgressFn = Callable[[int, int, str], None]


def form_values(settings: Mapping[str, Any] | None, run: RunInfo | None) -> tuple:
    """The form's defaults for a version's settings and (when there is one) its newest run."""
    found = preview_defaults(settings or {}, run.settings if run else None,
                             run.progress.architecture if run else None)
    seeds = ", ".join(str(s) for s in found["seeds"])
    return (found["prompt"], found["negative_prompt"], found["sampler"], found["steps"], found["cfg_scale"], seeds,
            found["width"], found["height"], DEFAULT_WEIGHTS)


def epoch_choices(run: RunInfo | None, keep: Sequence[str] | None = None):
    """Every LoRA file of the run (rows of the grid): those of ``keep`` still there; else the suggested
    file (lowest validation loss) and the final file when the run has a suggestion; else all of them."""
    names = [c.path.name for c in run.all_checkpoints] if run else []
    kept = [n for n in names if n in set(keep or ())]
    return choices(names, kept or default_epochs(run))


def default_epochs(run: RunInfo | None) -> list[str]:
    """The files ticked when nothing is: the suggested one and the final one, else every file."""
    if run is None:
        return []
    suggested = run.suggested
    if suggested is None:
        return [c.path.name for c in run.all_checkpoints]
    return [c.path.name for c in run.all_checkpoints if c.path == suggested.path or c.kind == "final"]


def parse_numbers(text: Any, what: str, kind: type) -> list:
    """Comma- or space-separated numbers; ValueError naming the bad one."""
    items = [item for item in str(text or "").replace(",", " ").split() if item]
    if not items:
        raise ValueError(f"give at least one {what}")
    values = []
    for item in items:
        try:
            value = float(item) if kind is float else int(item)
        except ValueError:
            raise ValueError(f"{what}s must be {'numbers' if kind is float else 'whole numbers'}: "
                             f"{item!r} is not") from None
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{what} {item!r} is not a finite number")
        values.append(value)
    return values


def build_request(run: RunInfo, prompt: str, negative: str, sampler: str, steps: Any, cfg: Any, seeds: Any,
                  width: Any, height: Any, weights: Any, epochs: Sequence[str] | None) -> PreviewRequest:
    """The request of the form; ValueError (PreviewError) with every problem."""
    files = {c.path.name: c.path for c in run.all_checkpoints}
    chosen = [name for name in files if name in set(epochs or ())]
    if not chosen:
        raise ValueError("choose at least one epoch (LoRA file) to preview")
    return PreviewRequest(
        prompt=str(prompt or ""), negative_prompt=str(negative or ""), sampler=str(sampler or ""),
        steps=_whole(steps, "steps"), cfg_scale=_number(cfg, "CFG scale"), seeds=parse_numbers(seeds, "seed", int),
        width=_whole(width, "width"), height=_whole(height, "height"),
        weights=parse_numbers(weights, "weight", float), checkpoints=[files[n] for n in chosen])


def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number") from None


def _whole(value: Any, what: str) -> int:
    number = _number(value, what)
    if number != int(number):
        raise ValueError(f"{what} must be a whole number, got {value}")
    return int(number)


def render(services: Services, run: RunInfo, form: Sequence, progress: ProgressFn | None = None) -> tuple[Reply, Any]:
    """Render the grid of the form (``FORM`` values then the chosen epochs) for ``run``.

    Returns the reply for ``SHOWN`` and the ``PreviewResult`` (for the publish form's picture).
    """
    request = build_request(run, *form)
    training = _training_running(services)
    renderer = services.host.preview_renderer()
    started = time.monotonic()
    try:
        result = render_preview(run.dir, request, ReuseBaseCells(renderer), progress=progress)
    finally:
        renderer.close()  # the WebUI's staged LoRA copies
        if training:  # the trainer needs the memory more than the next preview
            renderer.release()
    text = (f"rendered {len(result.cell_paths)} image(s) ({len(request.checkpoints)} epoch(s) × "
            f"{len(request.weights)} weight(s) × {len(request.seeds)} seed(s)) in {time.monotonic() - started:.0f} s "
            f"into {result.folder}")
    notice = info(text + "; a training job is running, so it took longer and slowed the training") if training \
        else ok(text)
    return Reply(notice, shown_values(run, result.folder.name)), result


def _training_running(services: Services) -> bool:
    return any(job.status == "running" for job in services.queue.jobs())


def shown_values(run: RunInfo | None, folder: str | None) -> tuple:
    """``SHOWN`` for the preview in ``folder`` (None: the newest one) of ``run``."""
    previews = list_previews(run.dir) if run else []
    if run is None or not previews:
        return choices([], None), None, [], "<p>No preview yet: choose the settings and press Render preview.</p>", ""
    auto = read_outcomes(run.dir).auto_previews
    labels = {Path(p["folder"]).name: Path(p["folder"]).name + (AUTO_MARK if Path(p["folder"]).name in auto else "")
              for p in previews}
    wanted = folder if folder in labels else Path(previews[-1]["folder"]).name
    manifest = next(p for p in previews if Path(p["folder"]).name == wanted)
    newest_first = [labels[Path(p["folder"]).name] for p in reversed(previews)]
    folder_path = Path(manifest["folder"])
    return (choices(newest_first, labels[wanted]), str(folder_path / GRID_FILE), cell_gallery(manifest),
            preview_info(manifest), wanted)


def show_earlier(run: RunInfo, label: str | None) -> Reply:
    """``SHOWN`` for a preview picked in the list."""
    folder = (label or "").split(" ")[0]
    return Reply(None, shown_values(run, folder or None))


def cell_gallery(manifest: Mapping[str, Any]) -> list:
    folder = Path(manifest["folder"])
    return [(str(folder / c["file"]), cell_caption(c)) for c in manifest.get("cells", []) if c.get("file")]


def cell_caption(cell: Mapping[str, Any]) -> str:
    where = f"epoch {cell['epoch']}" if cell.get("epoch") is not None else str(cell.get("checkpoint", ""))
    return f"{where} · weight {cell.get('weight', 0):g} · seed {cell.get('seed')}"


def preview_info(manifest: Mapping[str, Any]) -> str:
    """The settings a shown preview was rendered with."""
    seeds = ", ".join(str(s) for s in manifest.get("seeds", []))
    weights = ", ".join(f"{w:g}" for w in manifest.get("weights", []))
    parts = [f"<b>{html.escape(str(manifest.get('prompt', '')))}</b>"]
    if manifest.get("negative_prompt"):
        parts.append(f"negative: {html.escape(str(manifest['negative_prompt']))}")
    parts.append(html.escape(f"{manifest.get('sampler')}, {manifest.get('steps')} steps, "
                             f"CFG {manifest.get('cfg_scale')}, {manifest.get('width')}×{manifest.get('height')}, "
                             f"seeds {seeds}, weights {weights}"))
    return "<p>" + "<br>".join(parts) + "</p>"


def preview_cells(run: RunInfo) -> list[tuple[str, Mapping[str, Any]]]:
    """Every cell of the run's previews, newest preview first: (path relative to the run, cell)."""
    found = []
    for manifest in reversed(list_previews(run.dir)):
        folder = Path(manifest["folder"]).name
        for cell in manifest.get("cells", []):
            if cell.get("file"):
                found.append((f"{PREVIEW_FOLDER}/{folder}/{cell['file']}", cell))
    return found


def cell_at(run: RunInfo, folder: str | None, index: int | None) -> str | None:
    """The relative path of the ``index``-th cell of the preview in ``folder``."""
    if not folder or index is None:
        return None
    manifest = next((p for p in list_previews(run.dir) if Path(p["folder"]).name == folder), None)
    cells = [c for c in (manifest or {}).get("cells", []) if c.get("file")]
    if not 0 <= int(index) < len(cells):
        return None
    return f"{PREVIEW_FOLDER}/{folder}/{cells[int(index)]['file']}"
