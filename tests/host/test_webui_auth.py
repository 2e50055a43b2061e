"""The WebUI's authentication flags as an API policy (host/webui_auth.py)."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from .webui_fixtures import fake_webui  # noqa: F401


def _request(app, headers=None, cookies=None):
    headers = dict(headers or {})
    return SimpleNamespace(app=app, headers={k.lower(): v for k, v in headers.items()}, cookies=dict(cookies or {}))


def _basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_no_flags_no_credentials(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui_auth import webui_auth_policy

    assert not webui_auth_policy().required


def test_api_auth_credentials_with_colons_in_passwords(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui_auth import webui_auth_policy

    fake_webui.shared.cmd_opts.api_auth = "alice:pw1, bob:p:w:2"
    policy = webui_auth_policy()
    assert policy.credentials == {"alice": "pw1", "bob": "p:w:2"} and policy.session_check is None
    assert policy.allows(_request(object(), _basic("bob", "p:w:2")))
    assert not policy.allows(_request(object()))


def test_gradio_auth_from_flag_and_file_and_the_login_cookie(fake_webui, tmp_path):  # noqa: F811
    from lib_train_tools.host.webui_auth import webui_auth_policy

    creds = tmp_path / "auth.txt"
    creds.write_text("carol:pw3\n")
    fake_webui.shared.cmd_opts.gradio_auth = "dave:pw4"
    fake_webui.shared.cmd_opts.gradio_auth_path = str(creds)
    policy = webui_auth_policy()
    assert policy.credentials == {"dave": "pw4", "carol": "pw3"}
    gradio3_app = SimpleNamespace(tokens={"tok": "dave"})
    gradio4_app = SimpleNamespace(tokens={"tok": "dave"}, cookie_id="abc")
    assert policy.allows(_request(gradio3_app, cookies={"access-token": "tok"}))
    assert policy.allows(_request(gradio3_app, cookies={"access-token-unsecure": "tok"}))
    assert not policy.allows(_request(gradio3_app, cookies={"access-token": "stolen"}))
    assert policy.allows(_request(gradio4_app, cookies={"access-token-abc": "tok"}))
    assert not policy.allows(_request(gradio4_app, cookies={"access-token": "tok"}))
    assert not policy.allows(_request(SimpleNamespace(), cookies={"access-token": "tok"}))  # API-only app


def test_api_auth_wins_over_gradio_credentials_but_a_ui_login_still_counts(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui_auth import webui_auth_policy

    fake_webui.shared.cmd_opts.api_auth = "api:key"
    fake_webui.shared.cmd_opts.gradio_auth = "ui:pw"
    policy = webui_auth_policy()
    assert policy.credentials == {"api": "key"}
    app = SimpleNamespace(tokens={"t": "ui"})
    assert not policy.allows(_request(app, _basic("ui", "pw")))
    assert policy.allows(_request(app, cookies={"access-token": "t"}))
