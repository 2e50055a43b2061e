"""A stand-in for the Hugging Face hub's file routes on 127.0.0.1, for download tests.

It answers what ``huggingface_hub.hf_hub_download`` (0.x) asks for one file:
``HEAD /<repo_id>/resolve/<revision>/<filename>`` with ``X-Repo-Commit``, ``ETag`` and
``Content-Length``, then ``GET`` of the same path (with ``Range: bytes=N-`` when it resumes).
``truncate`` names files whose GET sends only half the bytes it announces and then closes the
connection; ``pieces``/``pause`` send a body slowly so progress can be watched.
"""

from __future__ import annotations

import hashlib
import socket
import time
from http.server import BaseHTTPRequestHandler

from .local_server import LocalServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStandIn(LocalServer):
    def __init__(self, repo_id: str, files: dict[str, bytes]):
        self.repo_id = repo_id
        self.files = dict(files)
        self.truncate: set[str] = set()
        self.pieces = 1
        self.pause = 0.0
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                prefix = f"/{hub.repo_id}/resolve/"
                revision, _, name = self.path[len(prefix):].partition("/") if self.path.startswith(prefix) else ("", "", "")
                if name not in hub.files or revision not in ("main", COMMIT):
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = hub.files[name]
                start = _range_start(self.headers.get("Range")) if body else 0
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                if body and name in hub.truncate:
                    self.send_header("Connection", "close")
                self.end_headers()
                if not body:
                    return
                payload = data[start:]
                if name in hub.truncate:
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                step = max(1, -(-len(payload) // hub.pieces))
                for offset in range(0, len(payload), step):
                    self.wfile.write(payload[offset : offset + step])
                    self.wfile.flush()
                    if hub.pause and offset + step < len(payload):
                        time.sleep(hub.pause)

        return Handler


def _range_start(header: str | None) -> int:
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return 0
    return int(header[len("bytes="):-1])


def unused_endpoint() -> str:
    """An address on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
