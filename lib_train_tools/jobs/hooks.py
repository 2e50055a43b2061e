"""Callbacks the job queue makes around each job, and the job log they report their failures to.

`JobHooks` holds optional callables: ``before_job(job)`` just before the trainer starts (the WebUI
unloads its model), ``after_job(job, progress)`` after it ended however it ended (reload the model,
publish, render previews), ``on_event(job, event)`` for every progress event read. A hook that
raises is reported in the job's ``train.log`` and never stops the queue.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobHooks:
    before_job: Callable[[Any], None] | None = None
    after_job: Callable[[Any, Any], None] | None = None
    on_event: Callable[[Any, Any], None] | None = None


def append_log(log_file: Path, message: str) -> None:
    """Add a ``[jobs]`` line (or lines) to a job's log; never raises."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = "".join(f"[jobs] {stamp} {line}\n" for line in message.rstrip("\n").splitlines())
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as handle:
            handle.write(lines.encode("utf-8"))
    except OSError as exc:
        _log.warning("cannot write to %s: %s", log_file, exc)


def call_hook(hooks: JobHooks, name: str, job: Any, *args: Any) -> None:
    """Call one hook if set; an exception is written to the job's log and swallowed."""
    hook = getattr(hooks, name)
    if hook is None:
        return
    try:
        hook(job, *args)
    except Exception:  # a broken hook must not stop training or the queue
        append_log(job.log_file, f"hook {name} failed:\n{traceback.format_exc()}")
        _log.exception("job %s: hook %s failed", job.id, name)
