"""The job queue: training jobs run one at a time per device, each a trainer subprocess.

`JobQueue(root, launcher, hooks)` keeps the queue order in ``<root>/queue.json`` and each job's
record in its run folder, so a reloaded page or a restarted app sees every job as it was. On
construction, jobs a previous app process left "running" are followed again when their trainer
still runs, or marked "interrupted" (resumable when the run saved a state) when it is gone.

After `start()`, one worker thread per device lane (the trainer's ``device`` option; unset,
"cuda" and "cuda:0" share the "default" lane) runs that lane's queued jobs in order. Progress
events are read from the run's progress file as they arrive, so `progress(id)` is a cheap copy.
`cancel(id)`: a queued job is cancelled without starting; a running one is asked to stop and save
(SIGTERM); a second cancel kills it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import FileLock, LockTimeout
from ..projects.layout import VersionPaths
from .grid import GridRun
from .hooks import JobHooks, append_log
from .job import DEFAULT_DEVICE, FINISHED_STATUSES, Job, JobError
from .launcher import TrainerLauncher
from .outcome import Outcome, read_log_tail
from .process import AdoptedProcess
from .progress_state import JobProgress
from .queue_file import QueueIndex, write_index
from .recovery import load_queue
from .runner import Claim, LaneRunner
from ..train.state_folders import newest_complete_state
from .submission import delete_if_never_started, plan_submission

OWNER_LOCK = "queue.lock"
DEFAULT_POLL_S = 0.25
DEFAULT_SHUTDOWN_S = 60.0

_log = logging.getLogger(__name__)


def resumable_state(job: Job) -> Path | None:
    """The newest complete state folder of the job's run (a killed save may have left it under a
    temporary name, or left the regular folder incomplete); None when there is none."""
    return newest_complete_state(job.run_dir, job.run_name)


def device_lane(device: Any) -> str:
    """The lane a trainer ``device`` option runs in: unset, "cuda" and "cuda:0" are one GPU."""
    text = str(device or "").strip().lower()
    return DEFAULT_DEVICE if text in ("", "none", "cuda", "cuda:0") else text


class JobQueue:
    """Queue, runner and record of training jobs under ``root`` (e.g. ``<output_root>/jobs``).

    Its state is its own: the lane runners reach it through the ``runner.LaneQueue`` methods."""

    def __init__(self, root: str | Path, launcher: TrainerLauncher | None = None, hooks: JobHooks | None = None,
                 poll_interval: float = DEFAULT_POLL_S) -> None:
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)
        self._launcher = launcher or TrainerLauncher()
        self._hooks = hooks or JobHooks()
        self._poll_interval = poll_interval
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._jobs_by_id: dict[str, Job] = {}
        self._order: list[str] = []            # queued job ids, in the order they will run
        self._progress_by_id: dict[str, JobProgress] = {}
        self._handles: dict[str, Any] = {}     # job id -> TrainerProcess / AdoptedProcess
        self._stop_reasons: dict[str, str] = {}
        self._claimed: set[str] = set()        # jobs a lane worker is running or following
        self._lanes: dict[str, threading.Thread] = {}
        self._owner: FileLock | None = None
        self._running_flag = False
        self._detaching = False
        self._load()

    # ----- reading -----
    @property
    def root(self) -> Path:
        return self._root

    @property
    def handles(self) -> dict[str, Any]:
        """Job id -> its trainer (TrainerProcess, or AdoptedProcess for an adopted one): a copy."""
        with self._lock:
            return dict(self._handles)

    def jobs(self) -> list[Job]:
        """Running jobs, then queued ones in queue order, then finished ones newest first."""
        with self._lock:
            running = sorted((j for j in self._jobs_by_id.values() if j.status == "running"),
                             key=lambda j: j.started or 0.0)
            queued = [self._jobs_by_id[i] for i in self._order]
            done = sorted((j for j in self._jobs_by_id.values() if j.status in FINISHED_STATUSES),
                          key=lambda j: -(j.finished or j.created))
            return [j.copy() for j in running + queued + done]

    def get(self, job_id: str) -> Job:
        with self._lock:
            return self._job(job_id).copy()

    def progress(self, job_id: str) -> JobProgress:
        """What the job's progress events say so far (a copy; cheap to poll)."""
        with self._lock:
            job = self._job(job_id)
            cached = self._progress_by_id.get(job_id)
            if cached is not None:
                return cached.snapshot()
        progress = JobProgress.from_file(job.progress_file)
        with self._lock:
            if job.status in FINISHED_STATUSES and job_id not in self._progress_by_id:
                self._progress_by_id[job_id] = progress
        return progress.snapshot()

    def log_tail(self, job_id: str, lines: int = 40) -> str:
        with self._lock:
            path = self._job(job_id).log_file
        return read_log_tail(path, lines)

    def can_resume(self, job_id: str) -> bool:
        with self._lock:
            job = self._job(job_id)
            return job.status in ("interrupted", "cancelled") and resumable_state(job) is not None

    def version_busy(self, version: VersionPaths) -> bool:
        """Whether a queued or running job trains ``version`` (its dataset must not change now)."""
        with self._lock:
            return any(_same_dir(j.run_dir.parent, version.trains) for j in self._jobs_by_id.values()
                       if j.status in ("queued", "running"))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job has finished (or ``timeout`` seconds passed); returns it as it is then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._job(job_id).status in ("queued", "running"):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._changed.wait(left if left is not None else 1.0)
            return self._job(job_id).copy()

    # ----- changing -----
    def submit(self, version: VersionPaths, configs: Sequence[GridRun] | Mapping[str, Any], *,
               base_model_path: Path | None = None, checkpoints: Mapping[str, Path] | None = None) -> list[Job]:
        """Queue one run per config (a settings dict, or the GridRuns of a grid); all or nothing.

        Every run is validated before any folder is made: a JobError lists what is wrong.
        """
        runs = [GridRun(config=dict(configs))] if isinstance(configs, Mapping) else list(configs)
        with self._lock:
            planned = plan_submission(version, runs, base_model_path, checkpoints, busy=self.version_busy(version))
            jobs: list[Job] = []
            try:
                for plan in planned:
                    job = plan.create(uuid.uuid4().hex[:12], time.time(), device_lane(plan.cfg.device))
                    self._jobs_by_id[job.id] = job
                    self._order.append(job.id)
                    jobs.append(job)
            except OSError as exc:  # a disk problem half-way: take back what was made
                for job in jobs:
                    self._order.remove(job.id)
                    del self._jobs_by_id[job.id]
                    delete_if_never_started(job.run_dir)
                raise JobError(f"cannot create the run folders: {exc}") from exc
            jobs = [job.copy() for job in jobs]
            self._save_index()
            self._changed.notify_all()
        self._kick()
        return jobs

    def cancel(self, job_id: str) -> Job:
        """Queued: cancelled without starting. Running: asked to stop and save; again: killed."""
        with self._lock:
            job = self._job(job_id)
            if job.status == "queued":
                self._order.remove(job_id)
                job.status, job.finished, job.message = "cancelled", time.time(), "cancelled before it started"
                job.save()
                self._save_index()
                self._changed.notify_all()
            elif job.status == "running":
                self._stop(job, "cancel")
            return job.copy()

    def remove(self, job_id: str) -> None:
        """Forget a queued or finished job. A queued job's folder (nothing trained yet) is deleted;
        a finished run's folder stays, with its files. A running job must be cancelled first."""
        with self._lock:
            job = self._job(job_id)
            if job.status == "running":
                raise JobError(f"job {job.run_name} is running: cancel it first")
            if job.status == "queued":
                self._order.remove(job_id)
                delete_if_never_started(job.run_dir)
            del self._jobs_by_id[job_id]
            self._progress_by_id.pop(job_id, None)
            self._save_index()
            self._changed.notify_all()

    def move(self, job_id: str, delta: int) -> int:
        """Move a queued job ``delta`` places (negative: earlier); returns its new queue position."""
        with self._lock:
            if self._job(job_id).status != "queued":
                raise JobError("only queued jobs can be moved")
            index = self._order.index(job_id)
            target = max(0, min(len(self._order) - 1, index + delta))
            self._order.insert(target, self._order.pop(index))
            self._save_index()
            self._changed.notify_all()
            return target

    def resume(self, job_id: str) -> Job:
        """Queue an interrupted or cancelled job again, continuing from its saved state."""
        with self._lock:
            job = self._job(job_id)
            if job.status not in ("interrupted", "cancelled"):
                raise JobError(f"only interrupted or cancelled jobs can be resumed; {job.run_name} is {job.status}")
            state = resumable_state(job)
            if state is None:
                raise JobError(f"{job.run_name} has no complete saved state to resume from (it stopped before "
                               "its first complete save); start a new run instead")
            job.status, job.resume_from = "queued", str(state)
            job.started = job.finished = job.exit_code = job.pid = None
            job.message = job.hint = job.log_excerpt = None
            job.cancel_requests = 0
            job.save()
            self._order.append(job_id)
            self._progress_by_id.pop(job_id, None)
            self._save_index()
            self._changed.notify_all()
            queued = job.copy()  # as queued: the worker may start it as soon as the lock is released
        append_log(job.log_file, f"resuming from {job.resume_from}")
        self._kick()
        return queued

    # ----- running -----
    def start(self) -> None:
        """Take ownership of the queue folder and start running queued (and adopted) jobs."""
        with self._lock:
            if self._running_flag:
                return
            owner = FileLock(self._root / OWNER_LOCK, timeout=0, what="the job queue")
            try:
                owner.__enter__()
            except LockTimeout:
                raise JobError(f"another Train Tools process is running the job queue in {self._root}") from None
            self._owner, self._running_flag, self._detaching = owner, True, False
        self._kick()

    def shutdown(self, stop_running: bool = True, timeout: float = DEFAULT_SHUTDOWN_S) -> None:
        """Stop the workers. With ``stop_running``, running trainers are asked to stop and save
        (their jobs become "interrupted", resumable); trainers still running after ``timeout``, or
        all of them without ``stop_running``, are left running for the next app process to adopt."""
        with self._lock:
            if not self._running_flag:
                return
            self._running_flag = False
            for job_id in list(self._handles):
                job = self._jobs_by_id[job_id]
                if stop_running and job.cancel_requests == 0:  # a cancelled one is already stopping
                    self._stop(job, "shutdown")
            if not stop_running:
                self._detaching = True
            self._changed.notify_all()
            lanes = list(self._lanes.values())
        deadline = time.monotonic() + timeout
        for lane in lanes:
            lane.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._detaching = True
            self._changed.notify_all()
        for lane in lanes:
            lane.join(5.0)
        with self._lock:
            self._save_index()
            if self._owner is not None:
                self._owner.__exit__(None, None, None)
                self._owner = None

    # ----- the lane runners' side (runner.LaneQueue) -----
    def claim_next(self, lane: str) -> Claim | None:
        with self._lock:
            job = self._next_job(lane) if self._running_flag else None
            if job is None:
                self._lanes.pop(lane, None)
                return None
            self._claimed.add(job.id)
            trainer = self._handles[job.id] if job.status == "running" else None
            return Claim(job.copy(), trainer)

    def unclaim(self, job_id: str) -> None:
        with self._lock:
            self._claimed.discard(job_id)

    def launch(self, job_id: str) -> tuple[Job | None, Any | None]:
        with self._lock:
            job = self._jobs_by_id.get(job_id)
            if job is None:
                return None, None  # removed during before_job
            if job.status != "queued" or job_id not in self._order or not self._running_flag:
                return job.copy(), None  # cancelled during before_job, or the queue stops
            if not job.config_file.is_file():  # its version was moved or deleted meanwhile
                self._forget(job_id, f"run folder {job.run_dir} is gone; job {job.run_name} dropped from the queue")
                return job.copy(), None
            self._order.remove(job_id)
            try:
                trainer = self._launcher.launch(job)
            except OSError as exc:
                self._record_end(job, Outcome("failed", f"the trainer could not be started: {exc}",
                                              "check the Python interpreter and the run folder"), None, "")
                return job.copy(), None
            job.status, job.started, job.pid, job.exit_code = "running", time.time(), trainer.pid, None
            self._handles[job_id] = trainer
            job.save()
            self._save_index()
            self._changed.notify_all()
            return job.copy(), trainer

    def track_progress(self, job_id: str, progress: JobProgress) -> None:
        with self._lock:
            self._progress_by_id[job_id] = progress

    def apply_events(self, job_id: str, progress: JobProgress, events: Sequence[Any]) -> Job:
        with self._lock:
            progress.apply_all(events)
            return self._job(job_id).copy()

    def wait_for_change(self) -> bool:
        with self._lock:
            if self._detaching:
                return False
            self._changed.wait(self._poll_interval)
            return True

    def finish(self, job_id: str, code: int | None, log_text: str,
               decide: Callable[[str | None], Outcome]) -> Job:
        with self._lock:
            job = self._job(job_id)
            self._record_end(job, decide(self._stop_reasons.pop(job_id, None)), code, log_text)
            self._handles.pop(job_id, None)
            return job.copy()

    def fail(self, job_id: str, log_text: str) -> None:
        with self._lock:
            trainer = self._handles.pop(job_id, None)
            if trainer is not None and trainer.running():
                trainer.kill()
            job = self._jobs_by_id.get(job_id)
            if job is None or job.status not in ("queued", "running"):
                return
            if job_id in self._order:
                self._order.remove(job_id)
            self._record_end(job, Outcome("failed", "the job queue failed while running this job",
                                          "see the log for the details"), None, log_text)

    # ----- internals -----
    def _next_job(self, lane: str) -> Job | None:
        """The job a lane runs next: an adopted running job first, then the first queued one."""
        for job_id, handle in self._handles.items():
            job = self._jobs_by_id[job_id]
            if isinstance(handle, AdoptedProcess) and job.device == lane and job_id not in self._claimed:
                return job
        for job_id in self._order:
            if self._jobs_by_id[job_id].device == lane:
                return self._jobs_by_id[job_id]
        return None

    def _forget(self, job_id: str, reason: str) -> None:
        """Drop a job whose run folder disappeared (caller holds the lock)."""
        _log.warning(reason)
        if job_id in self._order:
            self._order.remove(job_id)
        self._jobs_by_id.pop(job_id, None)
        self._progress_by_id.pop(job_id, None)
        self._save_index()
        self._changed.notify_all()

    def _record_end(self, job: Job, outcome: Outcome, code: int | None, log_text: str) -> None:
        """Save how the job ended (caller holds the lock)."""
        job.status, job.exit_code, job.finished, job.pid = outcome.status, code, time.time(), None
        job.message, job.hint = outcome.message, outcome.hint
        job.log_excerpt = log_text if outcome.status == "failed" else None
        job.save()
        self._save_index()
        self._changed.notify_all()

    def _kick(self) -> None:
        """Start a worker for every lane that has work and no worker."""
        with self._lock:
            if not self._running_flag:
                return
            lanes = {self._jobs_by_id[i].device for i in self._order}
            lanes |= {self._jobs_by_id[i].device for i in self._handles}
            for lane in sorted(lanes - set(self._lanes)):
                runner = LaneRunner(self, lane, self._hooks)
                thread = threading.Thread(target=runner.run, name=f"train-tools-jobs-{lane}", daemon=True)
                self._lanes[lane] = thread
                thread.start()

    def _stop(self, job: Job, reason: str) -> None:
        handle = self._handles.get(job.id)
        self._stop_reasons.setdefault(job.id, reason)
        job.cancel_requests += 1
        if handle is None:
            return
        if job.cancel_requests == 1:
            append_log(job.log_file, f"{reason}: asking the trainer to stop after this step and save")
            handle.request_stop()
        else:
            append_log(job.log_file, f"{reason} again: killing the trainer")
            handle.kill()
        job.save()

    def _job(self, job_id: str) -> Job:
        try:
            return self._jobs_by_id[job_id]
        except KeyError:
            raise JobError(f"no job with id {job_id!r}") from None

    def _save_index(self) -> None:
        runs = {job_id: job.run_dir for job_id, job in self._jobs_by_id.items()}
        write_index(self._root, QueueIndex(list(self._order), runs))

    def _load(self) -> None:
        loaded = load_queue(self._root)
        self._jobs_by_id, self._order, self._handles = loaded.jobs, loaded.order, dict(loaded.adopted)
        self._save_index()


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b
