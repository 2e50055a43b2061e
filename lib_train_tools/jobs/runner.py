"""The worker of one device lane: runs that lane's jobs one after another.

For each job: the ``before_job`` hook, start the trainer, then follow it: read the new progress
events every poll interval (folding them into the job's `JobProgress` and passing each to
``on_event``) until the trainer exits, decide how it ended (`outcome.decide_outcome`), save the
record and call ``after_job``. A job adopted from a previous app process is only followed.

The runner holds copies of job records, never the queue's own; it changes the queue only through
``LaneQueue`` (which ``JobQueue`` implements): every method there takes the queue's lock.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .hooks import JobHooks, append_log, call_hook
from .job import Job
from .outcome import LOG_EXCERPT_LINES, Outcome, decide_outcome, last_line, read_log_tail
from .progress_state import JobProgress, ProgressTail

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A job a lane runner took on: ``job`` (a copy) and, for a job adopted from a previous app
    process, its running ``trainer`` (only followed); None: a queued job, started by ``launch``."""

    job: Job
    trainer: Any | None = None


class LaneQueue(Protocol):
    """What a lane runner asks of the job queue."""

    def claim_next(self, lane: str) -> Claim | None:
        """The lane's next job (an adopted running one first, then the first queued one), claimed
        until ``unclaim``. None when nothing is left or the queue stops: the lane is then done."""
        ...

    def unclaim(self, job_id: str) -> None:
        """The runner is done with the job (however it ended)."""
        ...

    def launch(self, job_id: str) -> tuple[Job | None, Any | None]:
        """Start the trainer of a claimed queued job. Returns the job as it is then (None: it was
        removed meanwhile) and the trainer; no trainer when the job was cancelled or removed
        during ``before_job``, the queue stops, its run folder is gone (the job is dropped) or
        the trainer could not be started (the job failed)."""
        ...

    def track_progress(self, job_id: str, progress: JobProgress) -> None:
        """``progress`` is the running job's progress from now on (what ``progress(id)`` copies)."""
        ...

    def apply_events(self, job_id: str, progress: JobProgress, events: Sequence[Any]) -> Job:
        """Fold new ``events`` into the tracked ``progress``; returns a copy of the job."""
        ...

    def wait_for_change(self) -> bool:
        """Wait one poll interval (less when something changes); False when the queue lets go of
        its running trainers (they keep running for the next app process to adopt)."""
        ...

    def finish(self, job_id: str, code: int | None, log_text: str,
               decide: Callable[[str | None], Outcome]) -> Job:
        """Record how a job whose trainer exited ended: ``decide`` gets why the queue stopped it
        ("cancel", "shutdown"; None: it did not) and gives the outcome. Returns a copy of the job."""
        ...

    def fail(self, job_id: str, log_text: str) -> None:
        """The runner broke while running the job: kill its trainer, mark it failed."""
        ...


class LaneRunner:
    """Runs the jobs of ``lane`` from ``queue`` until none is left (or the queue stops)."""

    def __init__(self, queue: LaneQueue, lane: str, hooks: JobHooks) -> None:
        self.queue = queue
        self.lane = lane
        self.hooks = hooks

    def run(self) -> None:
        while True:
            claim = self.queue.claim_next(self.lane)
            if claim is None:
                return
            job = claim.job
            try:
                if claim.trainer is not None:
                    self._follow(job, claim.trainer, exit_known=False)
                else:
                    self._start_and_follow(job)
            except Exception:  # keep the lane alive; the job is marked failed
                self._fail_unexpectedly(job, traceback.format_exc())
            finally:
                self.queue.unclaim(job.id)

    def _start_and_follow(self, job: Job) -> None:
        call_hook(self.hooks, "before_job", job.copy())
        now, trainer = self.queue.launch(job.id)
        if trainer is not None:
            self._follow(job, trainer, exit_known=True)
        else:
            call_hook(self.hooks, "after_job", now or job, JobProgress())

    def _follow(self, job: Job, trainer: Any, exit_known: bool) -> None:
        tail, progress = ProgressTail(job.progress_file), JobProgress()
        progress.apply_all(tail.read_events())  # history: a resumed or adopted run's earlier events
        self.queue.track_progress(job.id, progress)
        while True:
            alive = trainer.running()
            self._read_new(job, tail, progress)
            if not alive:
                break
            if not self.queue.wait_for_change():
                return  # left running: the next app process adopts it
        self._finish(job, trainer, progress, exit_known)

    def _read_new(self, job: Job, tail: ProgressTail, progress: JobProgress) -> None:
        events = tail.read_events()
        if not events:
            return
        view = self.queue.apply_events(job.id, progress, events)
        for event in events:
            call_hook(self.hooks, "on_event", view, event)

    def _finish(self, job: Job, trainer: Any, progress: JobProgress, exit_known: bool) -> None:
        code = trainer.wait(30.0)
        log_text = read_log_tail(job.log_file, LOG_EXCERPT_LINES)
        trainer_lines = "\n".join(line for line in log_text.splitlines() if not line.startswith("[jobs]"))

        def decide(stop_reason: str | None) -> Outcome:
            return decide_outcome(progress, code, stop_reason, exit_known, last_line(trainer_lines))

        view = self.queue.finish(job.id, code, log_text, decide)
        append_log(job.log_file, f"finished: {view.status} (exit code {code})")
        call_hook(self.hooks, "after_job", view, progress.snapshot())  # only this thread changes progress

    def _fail_unexpectedly(self, job: Job, details: str) -> None:
        _log.error("job %s: the queue failed while running it:\n%s", job.id, details)
        append_log(job.log_file, f"the job queue failed while running this job:\n{details}")
        self.queue.fail(job.id, read_log_tail(job.log_file, LOG_EXCERPT_LINES))
