"""The standalone app serves the HTTP API beside the page (``python -m lib_train_tools [--api-auth ...]``).

Each server is the real app in a subprocess on a free port (tests/ui/app_server.py), under gradio
4.40 (the README's test command). It is kept out of tests/ui, which CI also runs under gradio 3.41:
there, running these two servers before tests/ui/test_browser.py made the walk-through's first
upload go unanswered (reproduced on an idle machine, cause not found yet); gradio 3's side of the
mount (``compat.served_app``) is covered by tests/ui/test_compat.py.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from .ui.app_server import AppServer

API = "/train-tools/v1"
USERS = "alice:s3cret:with:colons,bob:pw2"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MOUNT_WAIT_S = 15  # the API is added right after launch; the page may answer a moment before it


def call(url: str, method: str = "GET", body: dict | None = None, auth: tuple[str, str] | None = None):
    """(status, headers, parsed JSON or raw bytes) of one request; error statuses are returned."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode("utf-8")).decode("ascii")
    data = json.dumps(body).encode("utf-8") if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _NO_PROXY.open(request, timeout=30) as response:
            status, answer_headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, raw = error.code, error.headers, error.read()
    try:
        return status, answer_headers, json.loads(raw.decode("utf-8"))
    except ValueError:
        return status, answer_headers, raw


def api_ready(server: AppServer) -> str:
    """The API's root URL once it answers with something other than 404."""
    url = server.url.rstrip("/") + API + "/"
    deadline = time.monotonic() + MOUNT_WAIT_S
    while call(url)[0] == 404 and time.monotonic() < deadline:
        time.sleep(0.2)
    return url


def start(root, extra_args: list[str] | None = None) -> AppServer:
    return AppServer.start(root / "output", root / "checkpoints", root / "app.log", extra_args=extra_args)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("open-api")
    server = start(root)
    yield server, root
    server.stop()


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("guarded-api")
    server = start(root, ["--api-auth", USERS])
    yield server, root
    server.stop()


def test_the_api_answers_beside_the_page_and_its_address_is_printed(open_server):
    server, _ = open_server
    base = api_ready(server)
    status, _, about = call(base)
    assert status == 200
    assert about["name"] == "Train Tools" and about["host"] == "standalone" and about["training"] is True
    assert call(server.url)[0] == 200  # the page itself is still served
    assert f"HTTP API {base} (open)" in server.log_text()


def test_a_project_and_a_version_are_created_over_http(open_server):
    server, root = open_server
    base = api_ready(server)
    status, _, project = call(base + "projects", "POST", {"name": "テスト"})
    assert status == 201 and project["name"] == "テスト" and project["versions"] == []
    assert (root / "output" / "projects" / "テスト").is_dir()  # the same store the page uses
    project_url = base + "projects/" + urllib.parse.quote("テスト")
    status, _, version = call(project_url + "/versions", "POST", {"name": "v1"})
    assert status == 201 and (version["project"], version["name"]) == ("テスト", "v1")
    status, _, listed = call(base + "projects")
    assert status == 200 and [(p["name"], p["versions"]) for p in listed] == [("テスト", ["v1"])]
    status, _, again = call(base + "projects", "POST", {"name": "テスト"})
    assert status == 409, again


def test_with_api_auth_the_api_asks_for_the_credentials(guarded_server):
    server, root = guarded_server
    base = api_ready(server)
    status, headers, _ = call(base)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert call(base + "projects", "POST", {"name": "intruder"})[0] == 401
    assert call(base, auth=("alice", "wrong"))[0] == 401
    assert call(base, auth=("mallory", "pw2"))[0] == 401
    assert not (root / "output" / "projects" / "intruder").exists()
    status, _, about = call(base, auth=("alice", "s3cret:with:colons"))
    assert status == 200 and about["name"] == "Train Tools"
    status, _, project = call(base + "projects", "POST", {"name": "guarded"}, auth=("bob", "pw2"))
    assert status == 201 and project["name"] == "guarded"
    assert call(base + "projects", auth=("alice", "s3cret:with:colons"))[2][0]["name"] == "guarded"
    assert f"HTTP API {base} (credentials required" in server.log_text()
