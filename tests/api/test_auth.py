"""Credentials: refused without them when the host has authentication, open when it has none."""

from __future__ import annotations

import base64

from fastapi import FastAPI

from lib_train_tools.api.auth import AuthPolicy, basic_credentials
from lib_train_tools.api.mount import mount_api

from .asgi_client import AsgiClient
from .fakes import make_services

P = "/train-tools/v1"


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _client(tmp_path, policy: AuthPolicy) -> AsgiClient:
    app = FastAPI()
    mount_api(app, make_services(tmp_path), policy)
    return AsgiClient(app)


def test_open_when_no_credentials_are_configured(tmp_path):
    client = _client(tmp_path, AuthPolicy())
    assert client.get(f"{P}/projects").status_code == 200


def test_request_without_credentials_is_refused_when_auth_is_configured(tmp_path):
    client = _client(tmp_path, AuthPolicy({"alice": "s3cret:with:colons"}))
    for method, path in (("GET", "/projects"), ("POST", "/jobs"), ("POST", "/publish"), ("GET", "/")):
        answer = client.request(method, P + path, json={})
        assert answer.status_code == 401, (method, path)
        assert answer.headers["www-authenticate"].startswith("Basic")
    assert client.get(f"{P}/projects", headers=_basic("alice", "wrong")).status_code == 401
    assert client.get(f"{P}/projects", headers=_basic("bob", "s3cret:with:colons")).status_code == 401
    assert client.get(f"{P}/projects", headers={"Authorization": "Basic !!!notbase64"}).status_code == 401
    assert client.get(f"{P}/projects", headers=_basic("alice", "s3cret:with:colons")).status_code == 200


def test_session_check_lets_a_logged_in_browser_in(tmp_path):
    policy = AuthPolicy({"alice": "pw"}, session_check=lambda request: request.cookies.get("session") == "good")
    client = _client(tmp_path, policy)
    assert client.get(f"{P}/projects", headers={"Cookie": "session=bad"}).status_code == 401
    assert client.get(f"{P}/projects", headers={"Cookie": "session=good"}).status_code == 200


def test_a_session_check_that_raises_refuses(tmp_path):
    def broken(request):
        raise RuntimeError("gradio changed")

    client = _client(tmp_path, AuthPolicy(session_check=broken))
    assert client.get(f"{P}/projects").status_code == 401


def test_basic_credentials_parsing():
    assert basic_credentials(_basic("u", "p:q")["Authorization"]) == ("u", "p:q")
    assert basic_credentials("Bearer abc") == (None, "")
    assert basic_credentials("Basic " + base64.b64encode(b"nocolon").decode()) == (None, "")
    assert basic_credentials("") == (None, "")
