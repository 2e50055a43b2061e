"""One training job: what was asked, where it runs and how it ended, saved as ``<run_dir>/job.json``.

A job is one run of the trainer on one version, in its own run folder
(``<version>/trains/<run_name>/``). The folder holds the job record (``job.json``), the validated
trainer options (``config.toml``), the progress events (``progress.jsonl``), the trainer's output
(``train.log``) and everything the trainer writes (LoRA files, ``sample/``, the ``-state`` folder).

Statuses: ``queued`` -> ``running`` -> ``completed`` | ``cancelled`` | ``failed``; a job that was
running when the app stopped is ``interrupted`` (it can be resumed when its state folder exists).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, read_json
from ..train.state_folders import STATE_SUFFIX

JOB_STATUSES = ("queued", "running", "completed", "cancelled", "failed", "interrupted")
FINISHED_STATUSES = ("completed", "cancelled", "failed", "interrupted")
DEFAULT_DEVICE = "default"
JOB_FILE = "job.json"
CONFIG_FILE = "config.toml"
PROGRESS_FILE = "progress.jsonl"
LOG_FILE = "train.log"
SAMPLE_PROMPTS_FILE = "sample_prompts.txt"
JOB_RECORD_VERSION = 1


class JobError(ValueError):
    """A job cannot be submitted, found or changed; the message says why and what to do."""


@dataclass
class Job:
    """A training job; times are unix seconds, ``device`` names its lane ("default", "cuda:1", ...)."""

    id: str
    project: str
    version: str
    run_name: str
    run_dir: Path
    status: str = "queued"
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    pid: int | None = None
    device: str = DEFAULT_DEVICE
    grid_values: dict = field(default_factory=dict)
    resume_from: str | None = None
    # How it ended, for the UI: the trainer's error message and hint, or why the queue stopped it.
    message: str | None = None
    hint: str | None = None
    log_excerpt: str | None = None  # last lines of train.log when the job failed
    cancel_requests: int = 0

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        if self.status not in JOB_STATUSES:
            raise JobError(f"job {self.id}: status {self.status!r} is not one of {', '.join(JOB_STATUSES)}")

    @property
    def finished_or_stopped(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def job_file(self) -> Path:
        return self.run_dir / JOB_FILE

    @property
    def config_file(self) -> Path:
        return self.run_dir / CONFIG_FILE

    @property
    def progress_file(self) -> Path:
        return self.run_dir / PROGRESS_FILE

    @property
    def log_file(self) -> Path:
        return self.run_dir / LOG_FILE

    @property
    def state_dir(self) -> Path:
        """Where the trainer saves the state to resume from (output_name is the run name)."""
        return self.run_dir / f"{self.run_name}{STATE_SUFFIX}"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["run_dir"] = str(self.run_dir)
        data["record_version"] = JOB_RECORD_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Rebuild a job from ``to_dict()`` output; unknown keys (newer records) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"id", "project", "version", "run_name", "run_dir"} - set(data)
        if missing:
            raise JobError(f"job record lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def copy(self) -> Job:
        return dataclasses.replace(self, grid_values=dict(self.grid_values))

    def save(self) -> None:
        """Write ``job.json`` atomically (a reader sees the old record or the new one)."""
        atomic_write_json(self.job_file, self.to_dict())


def load_job(run_dir: Path) -> Job:
    """The job recorded in ``run_dir/job.json``; JobError when it is missing or unreadable.

    The record's ``run_dir`` is replaced by the folder it was read from, so a moved or renamed
    output folder still finds its files.
    """
    path = Path(run_dir) / JOB_FILE
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise JobError(f"cannot read the job record {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise JobError(f"no job record in {run_dir}")
    data = dict(data, run_dir=str(run_dir))
    return Job.from_dict(data)
