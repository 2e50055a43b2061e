"""What the UI and the HTTP API work with: the host, the project store and the job queue.

``create_services(host)`` builds the store at ``host.output_root()`` and the job queue at
``<output_root>/jobs`` with the hooks of ``run_hooks.py`` (the host's model freed and reloaded;
a completed run pruned, published and previewed as the settings say). The queue is built only
when the ``jobs`` package is installed; otherwise ``queue`` is None and the UI says so.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contracts import Host
from .projects import Store

PRESETS_FOLDER = "presets"
JOBS_FOLDER = "jobs"


@dataclass
class Services:
    host: Host
    store: Store
    queue: Any = None  # jobs.queue.JobQueue, or None while the jobs package is missing

    @property
    def output_root(self) -> Path:
        return Path(self.store.root)

    @property
    def presets_dir(self) -> Path:
        return self.output_root / PRESETS_FOLDER

    def shutdown(self) -> None:
        """Stop the queue's background thread (the running trainer keeps its own process)."""
        if self.queue is not None and hasattr(self.queue, "shutdown"):
            self.queue.shutdown()


def create_services(host: Host, start_queue: bool = True) -> Services:
    """The store and (when available) the queue for ``host``; ``start_queue=False`` for tests."""
    root = Path(host.output_root())
    root.mkdir(parents=True, exist_ok=True)
    store = Store(root)
    queue = _build_queue(host, store, root / JOBS_FOLDER, start_queue)
    return Services(host, store, queue)


def jobs_available() -> bool:
    return importlib.util.find_spec(f"{__package__}.jobs") is not None


def _build_queue(host: Host, store: Store, root: Path, start: bool) -> Any:
    if not jobs_available():
        return None
    from .jobs.launcher import TrainerLauncher
    from .jobs.queue import JobHooks, JobQueue
    from .run_hooks import RunHooks

    run_hooks = RunHooks(host, store)
    hooks = JobHooks(before_job=run_hooks.before_job, after_job=run_hooks.after_job)
    queue = JobQueue(root, TrainerLauncher(python=host.python_executable()), hooks=hooks)
    if start:
        queue.start()
    return queue
