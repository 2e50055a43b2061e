"""The WebUI's authentication, applied to the Train Tools API.

- ``--api-auth user:pass[,user:pass]``: these credentials (HTTP Basic), as for ``/sdapi/v1``.
- else ``--gradio-auth`` / ``--gradio-auth-path``: the UI's credentials (HTTP Basic).
- With gradio authentication, a browser logged in to the UI is let in too (its gradio session
  cookie: ``access-token`` in gradio 3, ``access-token-<cookie_id>`` in gradio 4).
- Neither: open, as the WebUI's own API is.
"""

from __future__ import annotations

from typing import Iterable

from ..api.auth import AuthPolicy, split_credentials
from .webui_modules import gradio_auth_creds, shared


def parse_credentials(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {user: password for user, password in pairs if user}


def gradio_credentials() -> list[tuple[str, str]]:
    return [(pair[0], pair[1]) for pair in gradio_auth_creds() if len(pair) == 2]


def gradio_session_check(request) -> bool:
    """Whether the request carries the login cookie of a user logged in to the gradio UI."""
    app = request.app
    tokens = getattr(app, "tokens", None)
    if not tokens:
        return False
    cookie_id = getattr(app, "cookie_id", None)
    names = (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}") if cookie_id \
        else ("access-token", "access-token-unsecure")
    return any(request.cookies.get(name) in tokens for name in names if request.cookies.get(name))


def webui_auth_policy() -> AuthPolicy:
    api = parse_credentials(split_credentials(getattr(shared.cmd_opts, "api_auth", None)))
    ui = parse_credentials(gradio_credentials())
    return AuthPolicy(credentials=api or ui, session_check=gradio_session_check if ui else None)
