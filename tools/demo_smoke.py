"""Smoke test of the demo as a user starts it: ``python -m lib_train_tools --demo``, then the page and the API.

    python3 tools/demo_smoke.py --python .venv-demo/bin/python [--timeout 180]

Starts the demo with the given interpreter on a free port of 127.0.0.1, from a temporary folder
(``demo_output/`` goes there; the package is found through PYTHONPATH, and no bytecode is
written, so nothing is left in the repository), waits until the page answers HTTP 200, checks
that the page's config holds the tab, creates a project and a version through the HTTP API
(``POST /train-tools/v1/projects``, ``POST /train-tools/v1/projects/{p}/versions``), reads them
back, and prints one line ending with ``demo smoke: OK``. Any failure prints ``demo smoke: FAIL``
with the reason and the end of the app's log, and exits 1. The server is always stopped
(terminate, then kill). Standard library only; loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
API = "/train-tools/v1"
PROJECT = "demo-smoke"
VERSION = "v1"
REQUEST_TIMEOUT_S = 30
STOP_TIMEOUT_S = 20
LOG_TAIL_CHARS = 4000
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never through a proxy


class SmokeFailure(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of one HTTP request; an HTTP error status is returned, not raised."""
    data = json.dumps(body).encode("utf-8") if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(req, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def json_of(url: str, method: str = "GET", body: dict | None = None, expect: int = 200):
    status, raw = request(url, method, body)
    if status != expect:
        raise SmokeFailure(f"{method} {url} answered {status} (expected {expect}): {raw[:300]!r}")
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise SmokeFailure(f"{method} {url} answered no JSON: {raw[:300]!r}") from exc


def wait_for(url: str, process: subprocess.Popen, deadline: float) -> None:
    """Until ``url`` answers 200; fails when the app exits or the deadline passes."""
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SmokeFailure(f"the app exited with code {process.returncode} before {url} answered")
        try:
            status, _ = request(url)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise SmokeFailure(f"{url} did not answer 200 in time (last: {last})")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def app_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(workdir / "gradio-tmp"))
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(h for h in (env.get(key, ""), "127.0.0.1,localhost") if h)
    return env


def exercise(base: str, process: subprocess.Popen, deadline: float) -> str:
    """The checks once the app runs; returns the summary (without the verdict)."""
    started = time.monotonic()
    wait_for(base + "/", process, deadline)
    page_s = time.monotonic() - started
    status, config = request(base + "/config")
    if status != 200 or b'"train_tools"' not in config:
        raise SmokeFailure(f"GET {base}/config answered {status} without the Train Tools tab")
    wait_for(base + API + "/", process, min(deadline, time.monotonic() + REQUEST_TIMEOUT_S))
    about = json_of(base + API + "/")
    created = json_of(base + API + "/projects", "POST", {"name": PROJECT}, expect=201)
    if created.get("name") != PROJECT:
        raise SmokeFailure(f"creating project {PROJECT!r} answered {created!r}")
    project_url = base + API + "/projects/" + urllib.parse.quote(PROJECT)
    json_of(project_url + "/versions", "POST", {"name": VERSION}, expect=201)
    listed = {p.get("name"): p for p in json_of(base + API + "/projects")}
    if VERSION not in listed.get(PROJECT, {}).get("versions", []):
        raise SmokeFailure(f"the project list does not show {PROJECT}/{VERSION}: {sorted(listed)}")
    version = json_of(project_url + "/versions/" + VERSION)
    if (version.get("project"), version.get("name")) != (PROJECT, VERSION) or "settings" not in version:
        raise SmokeFailure(f"reading {PROJECT}/{VERSION} back answered {version!r}")
    return (f"page {base}/ answered in {page_s:.1f} s; API {API} {about.get('name')} {about.get('version')} "
            f"({about.get('host')}); project {PROJECT!r} with version {VERSION!r} created and read back")


def run(python: str, timeout_s: float) -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="train-tools-demo-smoke-") as folder:
        workdir = Path(folder)
        log_path = workdir / "app.log"
        command = [python, "-m", "lib_train_tools", "--demo", "--host", "127.0.0.1", "--port", str(port)]
        with open(log_path, "w", encoding="utf-8") as log:
            try:
                process = subprocess.Popen(command, cwd=workdir, env=app_env(workdir), stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            except OSError as exc:
                print(f"demo smoke: FAIL: cannot start {python}: {exc}", flush=True)
                return 1
            try:
                summary = exercise(base, process, time.monotonic() + timeout_s)
            except (SmokeFailure, OSError) as exc:
                stop(process)
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
                print(f"--- end of the app's log ({' '.join(command)}) ---\n{tail}\n---", file=sys.stderr)
                print(f"demo smoke: FAIL: {exc}", flush=True)
                return 1
            finally:
                stop(process)
    print(f"{summary}; demo smoke: OK", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter of the environment to test (default: this one)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds the page may take to answer")
    args = parser.parse_args(argv)
    python = args.python if os.sep not in args.python else os.path.abspath(args.python)  # keep venv symlinks
    return run(python, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
