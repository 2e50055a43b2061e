"""Small stand-ins for the API tests: a host, a job queue that records calls, PNG bytes, a client."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from lib_train_tools.contracts import CheckpointChoice, HostSettings
from lib_train_tools.projects import Store


class FakeHost:
    name = "fake"

    def __init__(self, root: Path):
        self.root = root
        self.published: list[Path] = []
        self.base = root / "models" / "base.safetensors"

    def output_root(self) -> Path:
        return self.root / "out"

    def lora_dir(self) -> Path:
        return self.root / "Lora"

    def checkpoints(self) -> list[CheckpointChoice]:
        return [CheckpointChoice("base.safetensors", self.base)]

    def settings(self) -> HostSettings:
        return HostSettings()

    def lora_published(self, path: Path) -> None:
        self.published.append(Path(path))

    def preview_renderer(self) -> "FakeRenderer":
        self.renderer = FakeRenderer()
        return self.renderer


class FakeRenderer:
    """Draws each cell in a colour made from its weight; records requests and whether it was closed."""

    def __init__(self):
        self.requests = []
        self.closed = False

    def render(self, request):
        self.requests.append(request)
        return Image.new("RGB", (request.width, request.height), (int(255 * request.weight), 0, 0))

    def release(self):
        pass

    def close(self):
        self.closed = True


class JobError(ValueError):
    pass


@dataclass
class FakeJob:
    id: str
    project: str
    version: str
    run_name: str
    run_dir: Path
    status: str = "queued"
    created: float = field(default_factory=time.time)


@dataclass
class FakeProgress:
    status: str = "pending"
    step: int = 0
    total_steps: int = 10
    losses: list = field(default_factory=lambda: [(1, 0.5), (2, 0.4)])


class FakeQueue:
    """Records submissions; jobs live in memory, run folders on disk."""

    def __init__(self):
        self.submitted: list[tuple[Any, Any, dict]] = []
        self.by_id: dict[str, FakeJob] = {}
        self.cancelled: list[str] = []

    def submit(self, version, configs, *, base_model_path=None, checkpoints=None):
        runs = configs if isinstance(configs, list) else [configs]
        self.submitted.append((version, configs, dict(checkpoints or {})))
        jobs = []
        for number, _ in enumerate(runs):
            job_id = f"job{len(self.by_id) + 1}"
            run_dir = version.trains / f"{version.project}-{version.name}-{number}"
            run_dir.mkdir(parents=True)
            job = FakeJob(job_id, version.project, version.name, run_dir.name, run_dir)
            self.by_id[job_id] = job
            jobs.append(job)
        return jobs

    def jobs(self):
        return list(self.by_id.values())

    def get(self, job_id):
        if job_id not in self.by_id:
            raise JobError(f"no job with id {job_id!r}")
        return self.by_id[job_id]

    def progress(self, job_id):
        self.get(job_id)
        return FakeProgress()

    def log_tail(self, job_id, lines=40):
        self.get(job_id)
        return f"last {lines} lines of {job_id}"

    def cancel(self, job_id):
        job = self.get(job_id)
        self.cancelled.append(job_id)
        job.status = "cancelled"
        return job

    def version_busy(self, version):
        return any(j.project == version.project and j.version == version.name and j.status in ("queued", "running")
                   for j in self.by_id.values())


@dataclass
class FakeServices:
    host: FakeHost
    store: Store
    queue: FakeQueue


def make_services(root: Path) -> FakeServices:
    host = FakeHost(root)
    return FakeServices(host, Store(host.output_root()), FakeQueue())


def png_bytes(color=(200, 30, 30), size=(64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def write_events(path: Path, events: list[dict], partial: str = "") -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + partial, encoding="utf-8")
