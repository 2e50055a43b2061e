"""Training jobs: start, list, status, progress events, log, cancel.

    POST /jobs          {project, version, settings?, grid?}  queue one run (or one per grid cell)
    GET  /jobs                                                 every job, queue order
    GET  /jobs/{id}                                            the job and its folded progress
    GET  /jobs/{id}/events?since=N                             progress events from line N on
    GET  /jobs/{id}/log?lines=40                               the end of the trainer's log
    POST /jobs/{id}/cancel                                     stop it (a second call kills it)

``settings`` are merged into the version's saved settings first (as the tab's form does), so a
run is always reproducible from the version. ``grid`` maps a grid key (learning_rate,
network_dim, ...) to a list of values or a comma-separated string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body

from ..projects import load_settings, update_settings
from .errors import bad_request, required_text, translated_errors
from .serialize import jsonable

if TYPE_CHECKING:
    from ..jobs.queue import JobQueue
    from ..services import Services

PROGRESS_FILE = "progress.jsonl"
MAX_EVENTS = 2000  # per events call; the client asks again from ``next``


def jobs_router(services: Services) -> APIRouter:
    router = APIRouter()

    @router.post("/jobs", status_code=201)
    def submit(body: dict = Body(...)) -> list:
        queue = services.queue
        with translated_errors():
            version = services.store.version(required_text(body, "project"), required_text(body, "version"))
        with translated_errors(lookup=False):
            if body.get("settings"):
                if not isinstance(body["settings"], dict):
                    raise bad_request("'settings' must be an object of setting name -> value")
                update_settings(version, body["settings"])
            settings = load_settings(version)
            configs = _grid_runs(settings, body["grid"]) if body.get("grid") else settings
            checkpoints = {c.title: Path(c.path) for c in services.host.checkpoints()}
            jobs = queue.submit(version, configs, checkpoints=checkpoints)
            return [jsonable(job) for job in jobs]

    @router.get("/jobs")
    def list_jobs() -> list:
        queue = services.queue
        return [job_summary(queue, job, brief=True) for job in queue.jobs()]

    @router.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict:
        queue = services.queue
        with translated_errors():
            return job_summary(queue, queue.get(job_id))

    @router.get("/jobs/{job_id}/events")
    def job_events(job_id: str, since: int = 0) -> dict:
        queue = services.queue
        with translated_errors():
            job = queue.get(job_id)
        events, next_line = read_events(Path(job.run_dir) / PROGRESS_FILE, max(0, since))
        return {"job": job.id, "status": job.status, "events": events, "next": next_line}

    @router.get("/jobs/{job_id}/log")
    def job_log(job_id: str, lines: int = 40) -> dict:
        queue = services.queue
        with translated_errors():
            return {"job": job_id, "text": queue.log_tail(job_id, max(1, min(lines, 5000)))}

    @router.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict:
        queue = services.queue
        with translated_errors():
            return jsonable(queue.cancel(job_id))

    return router


def job_summary(queue: JobQueue, job: Any, brief: bool = False) -> dict:
    """The job record with its progress; ``brief`` leaves out the loss curve."""
    data = jsonable(job)
    progress = jsonable(queue.progress(job.id))
    if brief and isinstance(progress, dict):
        progress.pop("losses", None)
        progress.pop("epoch_losses", None)
    data["progress"] = progress
    return data


def read_events(path: Path, since: int) -> tuple[list, int]:
    """Complete JSON lines of ``path`` from line ``since`` on (at most MAX_EVENTS) and the next line.

    A line still being written (no newline yet) is left for the next call; a line that is not JSON
    is returned as ``{"type": "log", "text": ...}`` (as the protocol reads it) so line numbers stay aligned.
    """
    if not path.is_file():
        return [], since
    events: list[Any] = []
    line_number = 0
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            if line_number >= since:
                if len(events) >= MAX_EVENTS:
                    break
                events.append(_parse_line(raw))
            line_number += 1
    return events, since + len(events)


def _parse_line(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        return json.loads(text)
    except ValueError:
        return {"type": "log", "text": text}


def _grid_runs(settings: dict, grid: Any) -> list:
    if not isinstance(grid, dict):
        raise bad_request("'grid' must be an object of grid key -> list of values")
    from ..jobs.grid import expand_grid, parse_grid_values

    axes = {name: parse_grid_values(name, values) for name, values in grid.items()}
    return expand_grid(settings, axes)


