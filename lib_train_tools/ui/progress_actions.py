"""Handlers of the progress panel: Begin train, Add to queue, Cancel, and the live poll.

*Begin train* queues the chosen version's runs (one, or one per combination of its grid values)
ahead of the jobs already waiting, so they start now when nothing trains, else right after the
running job; *Add to queue* puts them at the end. *Cancel* on a running job asks the trainer to
stop after the current step and save (SIGTERM); pressed again, it kills the trainer.

``poll`` is called about once a second by the page. Everything comes from the job queue (so a
reloaded page or a restarted app shows the same), read as cheap snapshots; each part of the panel
is sent only when its input changed since the page last got it (``keys``, a small JSON text the
page keeps in a hidden box), so an idle page or a running job's unchanged parts cost nothing.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..jobs.grid_settings import settings_runs
from ..projects import load_settings
from ..projects.refused_entries import refusal_problems, refused_fields
from .loss_chart import loss_chart_svg
from .progress_view import progress_html, sample_items
from .queue_actions import focus_job, queue_positions, queue_table, shown_job
from .replies import NO_CHANGE, Reply, Update, info, ok
from .selection import require_version
from .train_actions import checkpoint_map

if TYPE_CHECKING:
    from ..services import Services

LOG_LINES = 30
POLL_SECONDS = 1.0
# What poll returns, in order (the panel wires its components in the same order).
POLL_OUTPUTS = ("progress", "chart", "log", "samples", "queue", "resume", "keys")


def submit_runs(services: Services, selection: str | None, first: bool) -> Reply:
    """Queue the version's runs; ``first``: ahead of the jobs already waiting. Resets the shown job
    to the default (the running one), so the panel follows the new runs as they start."""
    queue = services.queue
    version = require_version(services, selection)
    refused = refused_fields(version)
    if refused:
        raise ValueError("nothing was queued: fix these fields first -- " + "; ".join(refusal_problems(refused)))
    runs = settings_runs(load_settings(version))
    jobs = queue.submit(version, runs, checkpoints=checkpoint_map(services))
    if first:
        for place, job in enumerate(jobs):  # in order, so the first new job is never behind another new one
            try:
                queue.move(job.id, place - _queue_index(queue, job.id))
            except ValueError:  # it started already
                pass
    names = ", ".join(j.run_name for j in jobs)
    running = [j for j in queue.jobs() if j.status == "running" and j.id not in {n.id for n in jobs}]
    if first:
        when = f"it starts when {running[0].run_name} ends" if running else "training starts now"
    else:
        waiting = sum(1 for j in queue.jobs() if j.status in ("queued", "running")) - len(jobs)
        when = f"after the {waiting} job(s) before it" if waiting > 0 else "training starts now"
    what = f"{len(jobs)} runs" if len(jobs) > 1 else "1 run"
    # the panel shows the running job by default, so it follows the runs as they start
    return Reply(ok(f"queued {what} of {version.project}/{version.name} ({names}); {when}"), ("",))


def _queue_index(queue, job_id: str) -> int:
    return [j.id for j in queue.jobs() if j.status == "queued"].index(job_id)


def begin_train(services: Services, selection: str | None) -> Reply:
    return submit_runs(services, selection, first=True)


def add_to_queue(services: Services, selection: str | None) -> Reply:
    return submit_runs(services, selection, first=False)


def cancel_job(services: Services, selected: str | None, selection: str | None) -> Reply:
    """Cancel the shown job: a queued one does not start; a running one stops and saves; again: killed."""
    job = shown_job(services, selected, selection)
    if job.status not in ("queued", "running"):
        return Reply(info(f"{job.run_name} is not training ({job.status}); nothing to cancel"), (NO_CHANGE,))
    after = services.queue.cancel(job.id)
    if job.status == "queued":
        text = f"cancelled {job.run_name} before it started"
    elif after.cancel_requests <= 1:
        text = (f"asked {job.run_name} to stop after this step and save; press Cancel again to stop it at once "
                "(nothing more is saved)")
    else:
        text = f"stopping {job.run_name} at once (killed)"
    return Reply(ok(text), (NO_CHANGE,))


@dataclass
class PanelState:
    """What the panel shows now, read once per poll."""

    jobs: list
    job: Any
    progress: Any
    can_resume: bool
    log_size: int


def read_state(services: Services, selected: str | None, selection: str | None) -> PanelState:
    queue = services.queue
    jobs = queue.jobs()
    job = focus_job(jobs, selected, selection)
    if job is None:
        return PanelState(jobs, None, None, False, -1)
    progress = queue.progress(job.id)
    try:
        size = job.log_file.stat().st_size
    except OSError:
        size = -1
    return PanelState(jobs, job, progress, queue.can_resume(job.id), size)


def poll(services: Services, selected: str | None, selection: str | None, keys_text: str | None) -> Reply:
    """The panel's parts that changed since ``keys_text`` (see ``POLL_OUTPUTS``); the rest NO_CHANGE."""
    state = read_state(services, selected, selection)
    old = _load_keys(keys_text)
    new, values = dict(old), []
    for name, key, make in _parts(services, state):
        if old.get(name) == key:
            values.append(NO_CHANGE)
        else:
            values.append(make())
            new[name] = key
    new["ids"] = [j.id for j in state.jobs]
    changed = new != old
    return Reply(None, tuple(values) + (json.dumps(new) if changed else NO_CHANGE,))


def _parts(services: Services, state: PanelState) -> list[tuple[str, str, Any]]:
    """(name, change key, maker) of each part, in POLL_OUTPUTS order."""
    job, progress = state.job, state.progress
    job_id = job.id if job is not None else None
    position = queue_positions(state.jobs).get(job.id) if job is not None else None
    progress_key = (job_id, job and job.status, job and job.cancel_requests, job and job.message,
                    progress and progress.events, position, state.can_resume)
    chart_key = (job_id, progress and len(progress.losses), progress and progress.total_steps,
                 progress and progress.validation_losses[-1:])
    samples_key = (job_id, progress and len(progress.samples))
    table_key = ([(j.id, j.status, j.cancel_requests) for j in state.jobs], job_id)
    queue = services.queue
    return [
        ("progress", repr(progress_key),
         lambda: progress_html(job, progress, position=position, can_resume=state.can_resume)),
        ("chart", repr(chart_key), lambda: _chart(progress)),
        ("log", repr((job_id, state.log_size)), lambda: _log_html(queue.log_tail(job.id, LOG_LINES) if job else "")),
        ("samples", repr(samples_key), lambda: sample_items(progress)),
        ("queue", repr(table_key), lambda: queue_table(state.jobs, job_id)),
        ("resume", repr(state.can_resume), lambda: Update.of(visible=state.can_resume)),
    ]


def _chart(progress: Any) -> str:
    if progress is None:
        return loss_chart_svg([])
    return loss_chart_svg(progress.losses, progress.total_steps, progress.steps_per_epoch,
                          validation=progress.validation_losses)


def _log_html(text: str) -> str:
    if not text:
        return '<div class="tt-log tt-log-empty">The trainer\'s log appears here.</div>'
    return f'<div class="tt-log"><pre>{html.escape(text)}</pre></div>'


def _load_keys(text: str | None) -> dict:
    try:
        keys = json.loads(text) if text else {}
    except ValueError:
        return {}
    return keys if isinstance(keys, dict) else {}


def table_ids(keys_text: str | None) -> list[str]:
    """The job ids of the queue table's rows as the page last got them."""
    ids = _load_keys(keys_text).get("ids")
    return [str(i) for i in ids] if isinstance(ids, list) else []
