"""What the progress panel shows for one job, as HTML and gallery items (plain functions).

``progress_html(job, progress, ...)``: the job's name, its status, a bar with step/total, epoch,
loss, speed and time left while it runs; when it ended, how: completed (with its final file),
cancelled, interrupted (resumable or not) or failed (the trainer's error, a hint and the end of
its log). ``sample_items(progress)`` lists the sample pictures made so far.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

NO_JOB_TEXT = ("No training yet. Choose the version, check its settings above and press "
               "<b>Begin train</b>.")
STATUS_LABELS = {
    "queued": "queued", "running": "training", "completed": "completed", "cancelled": "cancelled",
    "failed": "failed", "interrupted": "interrupted",
}


def duration(seconds: float | None) -> str:
    """``1:02:03`` / ``4:05`` for a number of seconds; empty when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def job_title(job: Any) -> str:
    grid = ", ".join(f"{k} {v}" for k, v in (job.grid_values or {}).items())
    where = f"{job.project}/{job.version}" + (f"; {grid}" if grid else "")
    return f"<b>{html.escape(job.run_name)}</b> <span class='tt-job-where'>({html.escape(where)})</span>"


def progress_numbers(progress: Any) -> list[str]:
    """'step 12/40', 'epoch 1/2', 'loss 0.123 (average 0.130)', 'validation loss 0.121', '2.5 it/s',
    '0:11 left' (the validation loss is the latest measurement, when the run holds images out)."""
    parts = []
    if progress.total_steps:
        parts.append(f"step {progress.step}/{progress.total_steps}")
    if progress.total_epochs and progress.epoch:
        parts.append(f"epoch {progress.epoch}/{progress.total_epochs}")
    if progress.loss is not None:
        average = f" (average {progress.avg_loss:.4g})" if progress.avg_loss is not None else ""
        parts.append(f"loss {progress.loss:.4g}{average}")
    validation = getattr(progress, "validation_losses", None)
    if validation:
        parts.append(f"validation loss {validation[-1][1]:.4g}")
    if progress.it_per_sec:
        parts.append(f"{progress.it_per_sec:.3g} it/s")
    if progress.eta_sec is not None and progress.status == "running":
        parts.append(f"{duration(progress.eta_sec)} left")
    return parts


def bar_html(fraction: float, status: str) -> str:
    percent = max(0.0, min(1.0, fraction)) * 100
    return (f'<div class="tt-bar" data-fraction="{fraction:.3f}" data-status="{status}">'
            f'<div class="tt-bar-fill tt-bar-{status}" style="width: {percent:.1f}%"></div>'
            f'<span class="tt-bar-label">{percent:.0f}%</span></div>')


def progress_html(job: Any | None, progress: Any | None, *, position: int | None = None,
                  can_resume: bool = False, now: float | None = None) -> str:
    """The progress panel's main block for ``job`` (None: nothing trained yet)."""
    if job is None:
        return f'<div class="tt-progress tt-progress-none">{NO_JOB_TEXT}</div>'
    status = job.status
    head = (f'<div class="tt-progress-head">{job_title(job)} '
            f'<span class="tt-job-status tt-job-{status}">{STATUS_LABELS.get(status, status)}</span></div>')
    fraction = 1.0 if status == "completed" else (progress.fraction if progress is not None else 0.0)
    body = [bar_html(fraction, status)] if status != "queued" else []
    numbers = progress_numbers(progress) if progress is not None else []
    if numbers:
        body.append(f'<div class="tt-progress-numbers">{html.escape(" · ".join(numbers))}</div>')
    body.append(_state_line(job, progress, position, now))
    body.append(_outcome_html(job, can_resume))
    return f'<div class="tt-progress" data-job="{html.escape(job.id)}">{head}{"".join(body)}</div>'


def _state_line(job: Any, progress: Any | None, position: int | None, now: float | None) -> str:
    now = time.time() if now is None else now
    if job.status == "queued":
        where = "next" if position == 0 else f"after {position} other job(s)" if position else "soon"
        return f'<p class="tt-progress-note">Waiting to start ({where}).</p>'
    if job.status == "running":
        if job.cancel_requests:
            return ('<p class="tt-progress-note">Stopping: the trainer saves after this step. Press <b>Cancel</b> '
                    'again to stop it at once (nothing more is saved).</p>')
        if progress is None or progress.status == "pending":
            return '<p class="tt-progress-note">Starting the trainer: loading the base model…</p>'
        took = duration(now - job.started) if job.started else ""
        return f'<p class="tt-progress-note">Running for {took}.</p>' if took else ""
    took = duration((job.finished or now) - job.started) if job.started else ""
    if job.status == "completed" and progress is not None and progress.final_path:
        name = Path(progress.final_path).name
        return (f'<p class="tt-progress-note">Finished in {took}: {html.escape(name)} '
                f'({len(progress.checkpoints)} file(s) in the run folder; see <b>Results</b>).</p>')
    return f'<p class="tt-progress-note">Ran for {took}.</p>' if took else ""


def _outcome_html(job: Any, can_resume: bool) -> str:
    """Why a job that did not complete stopped, and what to do."""
    if job.status not in ("failed", "cancelled", "interrupted"):
        return ""
    parts = []
    if job.message:
        parts.append(f'<p class="tt-job-message">{html.escape(job.message)}</p>')
    if job.hint:
        parts.append(f'<p class="tt-job-hint">What to do: {html.escape(job.hint)}</p>')
    if job.status == "failed" and job.log_excerpt:
        parts.append(f'<details open><summary>End of the log</summary><pre class="tt-job-log">'
                     f'{html.escape(job.log_excerpt)}</pre></details>')
    if job.status in ("cancelled", "interrupted"):
        parts.append('<p class="tt-job-hint">Press <b>Resume</b> to continue from its last saved epoch.</p>'
                     if can_resume else
                     '<p class="tt-job-hint">It stopped before its first save, so it cannot be resumed; '
                     'press <b>Begin train</b> to start again.</p>')
    css = "tt-job-error" if job.status == "failed" else "tt-job-stopped"
    return f'<div class="{css}">{"".join(parts)}</div>'


def sample_items(progress: Any | None) -> list[tuple[str, str]]:
    """(picture, caption) of each sample written so far that is still on disk."""
    if progress is None:
        return []
    items = []
    for sample in progress.samples:
        if sample.path and Path(sample.path).is_file():
            when = f"epoch {sample.epoch}" if sample.epoch is not None else f"step {sample.step}"
            items.append((sample.path, f"{when}: {sample.prompt or ''}".strip(": ")))
    return items
