"""HTML of the Results tab: the runs of a version, one run's summary and its checkpoints table.

Every name comes from the user (projects, runs, prompts), so all text is escaped. Download links
point at gradio's ``file=<absolute path>`` route, which both gradio versions serve for files under
the app's allowed paths (the standalone app allows its output folder; gradio 3 also serves the
WebUI's own folder). The link is relative, so it works under a sub-path too.
"""

from __future__ import annotations

import html
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..results.outcomes import RunOutcomes
from ..results.runs import CheckpointInfo, RunInfo
from ..train.params import RESULTS_SETTINGS

BASE_MODEL_OPTION = "pretrained_model_name_or_path"


def when(timestamp: float | None) -> str:
    """A local date and time, or "" for none."""
    if not timestamp:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def size_text(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def download_url(path: Path) -> str:
    return "file=" + urllib.parse.quote(str(Path(path).resolve()), safe="/")


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str) -> str:
    """A table whose cells are already HTML."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="tt-results-table {css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def grid_values_text(run: RunInfo) -> str:
    grid_values = run.job.get("grid_values")
    values = grid_values if isinstance(grid_values, dict) else {}
    return ", ".join(f"{k} = {v}" for k, v in values.items())


def runs_html(runs: Sequence[RunInfo], chosen: str | None) -> str:
    """Every run of the version: name, status, date, grid values and number of LoRA files."""
    if not runs:
        return "<p>No training runs yet: start one in the Train tab.</p>"
    rows = []
    for run in runs:
        name = _esc(run.name)
        rows.append([f"<b>{name}</b>" if run.name == chosen else name, _status(run.status), _esc(when(run.created)),
                     _esc(grid_values_text(run)), str(len(run.all_checkpoints))])
    return _table(["Run", "Status", "Started", "Grid values", "LoRA files"], rows, "tt-runs")


def _status(status: str) -> str:
    return f'<span class="tt-run-{_esc(status)}">{_esc(status)}</span>'


def summary_html(run: RunInfo | None, outcomes: RunOutcomes | None) -> str:
    """Status, times, the settings that matter, where the run was published and what went wrong."""
    if run is None:
        return ""
    facts = [("Status", _status(run.status)), ("Folder", f"<code>{_esc(run.dir)}</code>")]
    started = run.job.get("started") or run.progress.started
    finished = run.job.get("finished") or run.progress.finished
    if started:
        facts.append(("Started", _esc(when(started))))
    if finished:
        facts.append(("Finished", _esc(when(finished)) + _duration(started, finished)))
    if run.progress.total_steps:
        facts.append(("Steps", f"{run.progress.last_step or 0} / {run.progress.total_steps}"))
    base = run.settings.get(BASE_MODEL_OPTION)
    if base:
        facts.append(("Base model", _esc(Path(str(base)).name)))
    facts += [(name, _esc(run.settings[name])) for name in _shown_settings(run.settings)]
    if grid_values_text(run):
        facts.append(("Grid values", _esc(grid_values_text(run))))
    if run.suggested is not None:
        facts.append(("Suggested", _esc(f"{checkpoint_label(run.suggested)}: the lowest validation loss, "
                                        f"{_validation_loss(run, run.suggested)}")))
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in facts)
    parts = [f'<table class="tt-results-table tt-run-facts">{rows}</table>']
    parts += _published_html(outcomes)
    parts += _problems_html(run, outcomes)
    return "".join(parts)


def _shown_settings(settings: dict) -> list[str]:
    """``RESULTS_SETTINGS`` (the options a person compares between runs) that are set; max_train_steps
    only when no epoch count overrides it."""
    names = [n for n in RESULTS_SETTINGS if settings.get(n) is not None]
    return [n for n in names if not (n == "max_train_steps" and settings.get("max_train_epochs"))]


def _duration(started: Any, finished: Any) -> str:
    try:
        seconds = int(float(finished) - float(started))
    except (TypeError, ValueError):
        return ""
    if seconds < 0:
        return ""
    return f" ({seconds // 3600} h {seconds % 3600 // 60} min)" if seconds >= 3600 else \
        f" ({seconds // 60} min {seconds % 60} s)"


def _published_html(outcomes: RunOutcomes | None) -> list[str]:
    if outcomes is None or not outcomes.published:
        return []
    items = []
    for pub in outcomes.published:
        how = "automatically when the run ended" if pub.auto else "from this page"
        gone = "" if pub.path.is_file() else " <i>(the file is no longer there)</i>"
        items.append(f"<li><b>{_esc(pub.name)}</b> ({_esc(pub.checkpoint)}, {how}, {_esc(when(pub.time))}): "
                     f"<code>{_esc(pub.path)}</code>{gone}</li>")
    return [f'<div class="tt-published"><b>Published as</b><ul>{"".join(items)}</ul></div>']


def _problems_html(run: RunInfo, outcomes: RunOutcomes | None) -> list[str]:
    lines = []
    message = run.job.get("message")
    if message and run.status != "completed":
        hint = run.job.get("hint")
        lines.append(str(message) + (f" ({hint})" if hint else ""))
    elif run.progress.error is not None and run.status != "completed":
        lines.append(run.progress.error.message)
    lines += list(run.problems)
    lines += [f"after the run, {p}" for p in (outcomes.problems if outcomes else [])]
    if not lines:
        return []
    items = "".join(f"<li>{_esc(line)}</li>" for line in lines)
    return [f'<div class="tt-report-refused"><b>Problems</b><ul>{items}</ul></div>']


def checkpoint_label(checkpoint: CheckpointInfo) -> str:
    if checkpoint.kind == "final":
        return "final" + (f" (epoch {checkpoint.epoch})" if checkpoint.epoch is not None else "")
    if checkpoint.kind == "step":
        return f"step {checkpoint.step}"
    return f"epoch {checkpoint.epoch}"


def _validation_loss(run: RunInfo, checkpoint: CheckpointInfo) -> str:
    """The validation loss measured at the end of the checkpoint's epoch, or "" for none."""
    losses = dict(run.progress.validation_losses)
    if checkpoint.kind == "step" or checkpoint.epoch not in losses:
        return ""
    return f"{losses[checkpoint.epoch]:.4g}"


def checkpoints_html(run: RunInfo | None) -> str:
    """The LoRA files of a run: epoch, step, size, date and a download link each; with a validation
    loss, its value per epoch and the suggested file (the lowest) marked."""
    if run is None:
        return ""
    files = run.all_checkpoints
    if not files:
        return "<p>No LoRA files yet: one is saved after each epoch.</p>"
    validated, suggested = bool(run.progress.validation_losses), run.suggested
    rows = []
    for c in files:
        link = f'<a href="{_esc(download_url(c.path))}" download="{_esc(c.path.name)}" target="_blank">download</a>'
        step = "" if c.step is None else c.step
        label = _esc(checkpoint_label(c))
        if suggested is not None and c.path == suggested.path:
            label += ' <b class="tt-suggested">★ suggested</b>'
        loss = [_esc(_validation_loss(run, c))] if validated else []
        rows.append([label, _esc(step), *loss, f"<code>{_esc(c.path.name)}</code>",
                     _esc(size_text(c.size)), _esc(when(c.mtime)), link])
    headers = ["Epoch", "Step"] + (["Validation loss"] if validated else []) + ["File", "Size", "Saved", ""]
    return _table(headers, rows, "tt-checkpoints")
