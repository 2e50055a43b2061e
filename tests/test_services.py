"""Services: the store at the host's output root, and the job queue under it."""

from __future__ import annotations

from lib_train_tools.host.standalone import StandaloneHost
from lib_train_tools.jobs.queue import JobQueue
from lib_train_tools.services import create_services


def test_services_build_the_store_at_the_output_root(tmp_path):
    services = create_services(StandaloneHost(tmp_path / "out", tmp_path / "models"), start_queue=False)
    assert services.store.root == (tmp_path / "out").resolve()
    assert services.output_root.is_dir()
    assert services.presets_dir == services.output_root / "presets"
    assert isinstance(services.queue, JobQueue) and services.queue.root == services.output_root / "jobs"
    services.shutdown()
