"""What the UI and the HTTP API work with: the host, the project store and the job queue.

``create_services(host)`` builds the store at ``host.output_root()`` and the job queue at
``<output_root>/jobs`` with the hooks of ``run_hooks.py`` (the host's model freed and reloaded;
a completed run pruned, published and previewed as the settings say).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .contracts import Host
from .jobs.hooks import JobHooks
from .jobs.launcher import TrainerLauncher
from .jobs.queue import JobQueue
from .projects import Store
from .run_hooks import RunHooks

PRESETS_FOLDER = "presets"
JOBS_FOLDER = "jobs"


@dataclass
class Services:
    host: Host
    store: Store
    queue: JobQueue

    @property
    def output_root(self) -> Path:
        return Path(self.store.root)

    @property
    def presets_dir(self) -> Path:
        return self.output_root / PRESETS_FOLDER

    def shutdown(self) -> None:
        """Stop the queue's background thread (the running trainer keeps its own process)."""
        self.queue.shutdown()


def create_services(host: Host, start_queue: bool = True) -> Services:
    """The store and the queue for ``host``; ``start_queue=False`` for tests."""
    root = Path(host.output_root())
    root.mkdir(parents=True, exist_ok=True)
    store = Store(root)
    run_hooks = RunHooks(host, store)
    hooks = JobHooks(before_job=run_hooks.before_job, after_job=run_hooks.after_job)
    queue = JobQueue(root / JOBS_FOLDER, TrainerLauncher(python=host.python_executable()), hooks=hooks)
    if start_queue:
        queue.start()
    return Services(host, store, queue)
