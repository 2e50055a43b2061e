"""Services: the store at the host's output root, and the queue when the jobs package is there."""

from __future__ import annotations

from lib_train_tools.host.standalone import StandaloneHost
from lib_train_tools.services import create_services, jobs_available


def test_services_build_the_store_at_the_output_root(tmp_path):
    services = create_services(StandaloneHost(tmp_path / "out", tmp_path / "models"), start_queue=False)
    assert services.store.root == (tmp_path / "out").resolve()
    assert services.output_root.is_dir()
    assert services.presets_dir == services.output_root / "presets"
    assert (services.queue is not None) == jobs_available()
    services.shutdown()
