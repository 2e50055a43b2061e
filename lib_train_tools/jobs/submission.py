"""Turning submitted settings into run folders: validate every run first, then create them all.

For each run (one settings dict, or one combination of a grid): pick a free run name, build the
trainer options (`run_config.build_run_config`), and validate them with the trainer's loader, so an
invalid setting is reported before anything is written. Only when every run is valid are the run
folders made, each with ``config.toml``, ``job.json`` and a ``train.log`` that starts with the
warnings the loader gave. The one change made before validating: submitted repeats that differ
from the processed folder's are applied to it (a rename), unless a job of the version is active.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..datasets.repeats import set_repeats
from ..projects.layout import VersionPaths
from ..train.config import TrainConfig
from .grid import GridRun
from .hooks import append_log
from .job import CONFIG_FILE, JOB_FILE, LOG_FILE, PROGRESS_FILE, SAMPLE_PROMPTS_FILE, Job, JobError
from .run_config import build_run_config, check_run_config, unused_settings, write_run_files
from .run_names import base_run_name, fit_run_name, free_run_name

NEVER_STARTED_FILES = {JOB_FILE, CONFIG_FILE, SAMPLE_PROMPTS_FILE, LOG_FILE}


@dataclass
class PlannedRun:
    """A validated run, not yet on disk."""

    version: VersionPaths
    run: GridRun
    name: str
    cfg: TrainConfig
    warnings: list[str]

    @property
    def run_dir(self) -> Path:
        return self.version.trains / self.name

    def create(self, job_id: str, now: float, device: str) -> Job:
        """Make the run folder with its config, log and job record; returns the queued job."""
        self.run_dir.mkdir(parents=True, exist_ok=False)
        write_run_files(self.run_dir, self.cfg, self.run.config.get("sample_prompt"))
        job = Job(id=job_id, project=self.version.project, version=self.version.name, run_name=self.name,
                  run_dir=self.run_dir, status="queued", created=now, device=device,
                  grid_values=dict(self.run.differing))
        notes = [f"queued {self.name} (job {job_id})"] + [f"warning: {w}" for w in self.warnings]
        unused = unused_settings(self.run.config)
        if unused:
            notes.append(f"settings not passed to the trainer: {', '.join(unused)}")
        append_log(job.log_file, "\n".join(notes))
        job.save()
        return job


def plan_submission(version: VersionPaths, runs: Sequence[GridRun], base_model_path: Path | None,
                    checkpoints: Mapping[str, Path] | None, busy: bool) -> list[PlannedRun]:
    """Validate every run and choose its name; JobError (nothing written) when one cannot run.

    ``busy``: a job of this version is queued or running, so its dataset folder cannot be renamed
    to apply new repeats.
    """
    if not runs:
        raise JobError("nothing to train: no settings were submitted")
    _apply_repeats(version, runs, busy)
    planned: list[PlannedRun] = []
    taken: list[str] = []
    base = base_run_name(version.project, version.name)
    for run in runs:
        name = free_run_name(version.trains, fit_run_name(base, run.suffix), taken)
        options = build_run_config(version, run.config, version.trains / name, name, base_model_path, checkpoints)
        cfg, warnings = check_run_config(options)
        planned.append(PlannedRun(version, run, name, cfg, warnings))
        taken.append(name)
    return planned


def _apply_repeats(version: VersionPaths, runs: Sequence[GridRun], busy: bool) -> None:
    """Rename ``processed/<repeats>_<project>`` to the submitted repeats when they differ."""
    wanted = set()
    for run in runs:
        value = run.config.get("repeats")
        if value is None:
            continue
        try:
            wanted.add(int(value))
        except (TypeError, ValueError):
            raise JobError(f"repeats must be a whole number, got {value!r}") from None
    if not wanted:
        return
    if len(wanted) > 1:
        raise JobError(f"runs of one version must share their repeats, got {sorted(wanted)}")
    repeats = wanted.pop()
    current = version.processed_repeats()
    if current is None or current == repeats:
        return  # no dataset: build_run_config says so
    if busy:
        raise JobError(f"repeats changed from {current} to {repeats}, but a job of this version is queued or "
                       "running: wait for it (or keep the repeats) before queueing more")
    try:
        set_repeats(version, repeats)
    except ValueError as exc:
        raise JobError(str(exc)) from exc


def delete_if_never_started(run_dir: Path) -> None:
    """Remove a queued job's run folder when it holds only what submitting wrote."""
    try:
        names = {p.name for p in run_dir.iterdir()}
    except FileNotFoundError:
        return
    if names <= NEVER_STARTED_FILES and PROGRESS_FILE not in names:
        shutil.rmtree(run_dir, ignore_errors=True)
