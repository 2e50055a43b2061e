"""Who may call the API: HTTP Basic credentials and/or a logged-in session of the host's UI.

An ``AuthPolicy`` with no credentials and no session check lets everyone in (the WebUI without
``--api-auth``/``--gradio-auth``, like its own ``/sdapi/v1`` routes). Otherwise a request needs an
``Authorization: Basic`` header naming one of ``credentials`` (passwords compared in constant
time), or a session that ``session_check`` accepts (the WebUI: a gradio login cookie). A refusal
is 401 with ``WWW-Authenticate: Basic``, as the WebUI's own API answers.

``split_credentials`` reads the ``--api-auth user:pass[,user:pass]`` syntax that the WebUI and the
standalone app share.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from fastapi import HTTPException, Request

SessionCheck = Callable[[Request], bool]


@dataclass(frozen=True)
class AuthPolicy:
    credentials: Mapping[str, str] = field(default_factory=dict)   # user -> password
    session_check: Optional[SessionCheck] = None
    realm: str = "Train Tools"

    @property
    def required(self) -> bool:
        return bool(self.credentials) or self.session_check is not None

    def allows(self, request: Request) -> bool:
        if not self.required:
            return True
        user, password = basic_credentials(request.headers.get("authorization", ""))
        if user is not None and user in self.credentials:
            if secrets.compare_digest(password.encode("utf-8"), self.credentials[user].encode("utf-8")):
                return True
        return self.session_check is not None and _safe_check(self.session_check, request)


def split_credentials(text: str | None) -> list[tuple[str, str]]:
    """``"a:x,b:y"`` -> [("a", "x"), ("b", "y")]; a password may contain ``:``."""
    pairs = []
    for item in (text or "").split(","):
        user, sep, password = item.strip().partition(":")
        if sep:
            pairs.append((user, password))
    return pairs


def basic_credentials(header: str) -> tuple[str | None, str]:
    """(user, password) from an ``Authorization: Basic ...`` header; (None, "") when absent or malformed."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, "")


def auth_dependency(policy: AuthPolicy) -> Callable[[Request], None]:
    """A FastAPI dependency that refuses requests the policy does not allow."""

    def check(request: Request) -> None:
        if not policy.allows(request):
            raise HTTPException(status_code=401, detail="Incorrect or missing credentials",
                                headers={"WWW-Authenticate": f'Basic realm="{policy.realm}"'})

    return check


def _safe_check(check: SessionCheck, request: Request) -> bool:
    try:
        return bool(check(request))
    except Exception:  # a broken session check refuses; it never lets a request through
        return False
