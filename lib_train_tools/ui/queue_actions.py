"""The job queue's table and the actions on the job the progress panel shows (plain functions).

The panel shows one job at a time, the *focus*: the row the user clicked, else the running job,
else the chosen version's job that ended (or was queued) last. *Move up/down*, *Remove*, *Resume* and *Cancel* act
on it. The table lists every job: the running one, the queued ones in the order they will run,
then the finished ones, newest first (``JobQueue.jobs()``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .replies import NO_CHANGE, Reply, Table, info, ok
from .selection import parse_selection

if TYPE_CHECKING:
    from ..services import Services

QUEUE_HEADERS = ("shown", "status", "run", "project / version", "grid values", "when")
FOCUS_MARK = "▶"


def focus_job(jobs: Sequence[Any], selected: str | None, selection: str | None) -> Any | None:
    """The job the panel shows (see the module docstring); None when there is none to show."""
    by_id = {j.id: j for j in jobs}
    if selected and selected in by_id:
        return by_id[selected]
    running = [j for j in jobs if j.status == "running"]
    if running:
        return running[0]
    chosen = parse_selection(selection)
    mine = [j for j in jobs if chosen and (j.project, j.version) == chosen]
    return max(mine, key=lambda j: j.finished or j.started or j.created) if mine else None


def queue_positions(jobs: Sequence[Any]) -> dict[str, int]:
    """Queued job id -> its place in line (0 = next)."""
    return {j.id: i for i, j in enumerate(j for j in jobs if j.status == "queued")}


def _when(job: Any) -> str:
    stamp, what = ((job.finished, "ended") if job.finished else (job.started, "started") if job.started
                   else (job.created, "queued"))
    return f"{what} {time.strftime('%m-%d %H:%M', time.localtime(stamp))}" if stamp else ""


def queue_table(jobs: Sequence[Any], focus_id: str | None) -> Table:
    positions = queue_positions(jobs)
    rows = []
    for job in jobs:
        status = f"queued #{positions[job.id] + 1}" if job.id in positions else job.status
        if job.status == "running" and job.cancel_requests:
            status = "stopping"
        grid = ", ".join(f"{k} {v}" for k, v in (job.grid_values or {}).items())
        rows.append((FOCUS_MARK if job.id == focus_id else "", status, job.run_name,
                     f"{job.project}/{job.version}", grid, _when(job)))
    return Table(QUEUE_HEADERS, tuple(rows))


def shown_job(services: Services, selected: str | None, selection: str | None) -> Any:
    """The focus job; ValueError when there is no job to act on."""
    job = focus_job(services.queue.jobs(), selected, selection)
    if job is None:
        raise ValueError("no job is shown: press Begin train first, or click a job in the queue")
    return job


def select_row(ids: Sequence[str], index: Any) -> Reply:
    """A click on a row of the queue table shows that job (``ids``: the table's job ids, in order)."""
    row = index[0] if isinstance(index, (list, tuple)) and index else index
    if not isinstance(row, int) or not 0 <= row < len(ids):
        return Reply(None, (NO_CHANGE,))
    return Reply(None, (ids[row],))


def move_job(services: Services, selected: str | None, selection: str | None, delta: int) -> Reply:
    job = shown_job(services, selected, selection)
    place = services.queue.move(job.id, delta)
    return Reply(ok(f"{job.run_name} is now number {place + 1} in the queue"), (job.id,))


def remove_job(services: Services, selected: str | None, selection: str | None) -> Reply:
    """Take a queued or finished job off the list (a finished run's folder and files stay)."""
    job = shown_job(services, selected, selection)
    services.queue.remove(job.id)
    if job.status == "queued":
        text = f"removed {job.run_name} from the queue (nothing was trained yet)"
    else:
        text = f"removed {job.run_name} from the list; its files stay in {job.run_dir}"
    return Reply(ok(text), ("",))


def resume_job(services: Services, selected: str | None, selection: str | None) -> Reply:
    job = shown_job(services, selected, selection)
    queued = services.queue.resume(job.id)
    return Reply(ok(f"{queued.run_name} is queued again; it continues from its last saved state"), (queued.id,))


def show_running(services: Services, selection: str | None) -> Reply:
    """Forget the clicked row: show the running job (or the version's newest) again."""
    job = focus_job(services.queue.jobs(), None, selection)
    return Reply(None if job else info("nothing is training now"), ("",))


def forget_choice() -> Reply:
    """Another version was chosen: show the running job (or that version's newest) by default."""
    return Reply(None, ("",))
