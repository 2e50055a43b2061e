"""The worker of one device lane: runs that lane's jobs one after another.

For each job: the ``before_job`` hook, start the trainer, then follow it: read the new progress
events every poll interval (folding them into the job's `JobProgress` and passing each to
``on_event``) until the trainer exits, decide how it ended (`outcome.decide_outcome`), save the
record and call ``after_job``. A job adopted from a previous app process is only followed.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import TYPE_CHECKING, Any

from .hooks import append_log, call_hook
from .job import Job
from .outcome import LOG_EXCERPT_LINES, decide_outcome, last_line, read_log_tail
from .progress_state import JobProgress, ProgressTail

if TYPE_CHECKING:
    from .queue import JobQueue

_log = logging.getLogger(__name__)


class LaneRunner:
    """Runs the jobs of ``lane`` from ``queue`` until none is left (or the queue stops)."""

    def __init__(self, queue: JobQueue, lane: str) -> None:
        self.queue = queue
        self.lane = lane

    def run(self) -> None:
        q = self.queue
        while True:
            with q.lock:
                job = q.next_job(self.lane) if q.running_flag else None
                if job is None:
                    q.lane_finished(self.lane)
                    return
                q.claimed.add(job.id)
                adopted = job.status == "running"
            try:
                if adopted:
                    self._follow(job, q.handles[job.id], exit_known=False)
                else:
                    self._start_and_follow(job)
            except Exception:  # keep the lane alive; the job is marked failed
                self._fail_unexpectedly(job, traceback.format_exc())
            finally:
                with q.lock:
                    q.claimed.discard(job.id)

    def _start_and_follow(self, job: Job) -> None:
        q = self.queue
        call_hook(q.hooks, "before_job", job.copy())
        with q.lock:
            if job.status != "queued" or job.id not in q.order or not q.running_flag:
                started = False  # cancelled or removed during the hook, or the queue stops
            elif not job.config_file.is_file():
                started = False  # its version was moved or deleted meanwhile
                q.forget(job.id, f"run folder {job.run_dir} is gone; job {job.run_name} dropped from the queue")
            else:
                q.order.remove(job.id)
                started = self._launch(job)
        if started:
            self._follow(job, q.handles[job.id], exit_known=True)
        else:
            call_hook(q.hooks, "after_job", job.copy(), JobProgress())

    def _launch(self, job: Job) -> bool:
        """Start the trainer (under the queue lock); a failure to start fails the job."""
        q = self.queue
        try:
            handle = q.launcher.launch(job)
        except OSError as exc:
            self._record_end(job, "failed", None, f"the trainer could not be started: {exc}",
                             "check the Python interpreter and the run folder", "")
            return False
        job.status, job.started, job.pid, job.exit_code = "running", time.time(), handle.pid, None
        q.handles[job.id] = handle
        job.save()
        q.save_index()
        q.changed.notify_all()
        return True

    def _follow(self, job: Job, handle: Any, exit_known: bool) -> None:
        q = self.queue
        tail, progress = ProgressTail(job.progress_file), JobProgress()
        progress.apply_all(tail.read_events())  # history: a resumed or adopted run's earlier events
        with q.lock:
            q.progress_by_id[job.id] = progress
        while True:
            alive = handle.running()
            self._read_new(job, tail, progress)
            if not alive:
                break
            with q.lock:
                if q.detaching:
                    return  # left running: the next app process adopts it
                q.changed.wait(q.poll_interval)
        self._finish(job, handle, progress, exit_known)

    def _read_new(self, job: Job, tail: ProgressTail, progress: JobProgress) -> None:
        events = tail.read_events()
        if not events:
            return
        with self.queue.lock:
            progress.apply_all(events)
            view = job.copy()
        for event in events:
            call_hook(self.queue.hooks, "on_event", view, event)

    def _finish(self, job: Job, handle: Any, progress: JobProgress, exit_known: bool) -> None:
        q = self.queue
        code = handle.wait(30.0)
        log_text = read_log_tail(job.log_file, LOG_EXCERPT_LINES)
        trainer_lines = "\n".join(line for line in log_text.splitlines() if not line.startswith("[jobs]"))
        with q.lock:
            reason = q.stop_reasons.pop(job.id, None)
            outcome = decide_outcome(progress, code, reason, exit_known, last_line(trainer_lines))
            self._record_end(job, outcome.status, code, outcome.message, outcome.hint, log_text)
            q.handles.pop(job.id, None)
            snapshot, view = progress.snapshot(), job.copy()
        append_log(job.log_file, f"finished: {outcome.status} (exit code {code})")
        call_hook(q.hooks, "after_job", view, snapshot)

    def _record_end(self, job: Job, status: str, code: int | None, message: str | None, hint: str | None,
                    log_text: str) -> None:
        """Save how the job ended (caller holds the queue lock)."""
        job.status, job.exit_code, job.finished, job.pid = status, code, time.time(), None
        job.message, job.hint = message, hint
        job.log_excerpt = log_text if status == "failed" else None
        job.save()
        self.queue.save_index()
        self.queue.changed.notify_all()

    def _fail_unexpectedly(self, job: Job, details: str) -> None:
        _log.error("job %s: the queue failed while running it:\n%s", job.id, details)
        append_log(job.log_file, f"the job queue failed while running this job:\n{details}")
        q = self.queue
        with q.lock:
            handle = q.handles.pop(job.id, None)
            if handle is not None and handle.running():
                handle.kill()
            if job.status in ("queued", "running"):
                if job.id in q.order:
                    q.order.remove(job.id)
                self._record_end(job, "failed", None, "the job queue failed while running this job",
                                 "see the log for the details", read_log_tail(job.log_file, LOG_EXCERPT_LINES))
