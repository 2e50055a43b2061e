"""Reading the queue back when the app starts: every known job, the queue order, live trainers.

Jobs come from the index (``queue.json``) and their ``job.json``. A job a previous app process left
"running" is followed again when its trainer is still alive (an `AdoptedProcess`), otherwise it
gets the status its progress file says (completed, failed) or "interrupted".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .hooks import append_log
from .job import Job, JobError, load_job
from .outcome import LOG_EXCERPT_LINES, read_log_tail, recovered_outcome
from .process import AdoptedProcess, process_alive
from .progress_state import JobProgress
from .queue_file import read_index

_log = logging.getLogger(__name__)


@dataclass
class LoadedQueue:
    jobs: dict[str, Job] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    adopted: dict[str, AdoptedProcess] = field(default_factory=dict)


def load_queue(root: Path) -> LoadedQueue:
    """Every job the index lists whose record is readable, with jobs left running recovered."""
    index = read_index(root)
    loaded = LoadedQueue()
    for job_id, run_dir in index.runs.items():
        try:
            job = load_job(run_dir)
        except JobError as exc:
            _log.warning("job %s is no longer available: %s", job_id, exc)
            continue
        if job.id != job_id:
            _log.warning("job record in %s has id %s, the index says %s; skipped", run_dir, job.id, job_id)
            continue
        loaded.jobs[job_id] = job
        if job.status == "running":
            handle = recover_running_job(job)
            if handle is not None:
                loaded.adopted[job_id] = handle
    queued = [i for i in index.queued if i in loaded.jobs and loaded.jobs[i].status == "queued"]
    rest = sorted((j for j in loaded.jobs.values() if j.status == "queued" and j.id not in queued),
                  key=lambda j: j.created)
    loaded.order = queued + [j.id for j in rest]
    return loaded


def recover_running_job(job: Job) -> AdoptedProcess | None:
    """Follow a job's live trainer (returns its handle), or record how the job ended."""
    marker = str(job.config_file)
    if job.pid is not None and process_alive(job.pid, marker):
        append_log(job.log_file, f"the app restarted; following the trainer (pid {job.pid}) again")
        return AdoptedProcess(job.pid, marker)
    outcome = recovered_outcome(JobProgress.from_file(job.progress_file))
    job.status, job.message, job.hint = outcome.status, outcome.message, outcome.hint
    job.finished = job.finished or time.time()
    job.pid = None
    if outcome.status == "failed":
        job.log_excerpt = read_log_tail(job.log_file, LOG_EXCERPT_LINES)
    append_log(job.log_file, f"the app restarted and found the trainer gone: {outcome.status}")
    job.save()
    return None
