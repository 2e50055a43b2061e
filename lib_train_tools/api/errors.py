"""How the library's errors become HTTP answers: the message as ``detail``, a fitting status.

The library raises ``ValueError`` subclasses with messages written for people (StoreError,
InvalidNameError, SettingsError, JobError, PublishError, PreviewError, ConfigError...). They
become 400, except: something that does not exist -> 404, a name that is taken -> 409. Errors we
did not expect are left to the server (500 with a traceback in the log).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from fastapi import HTTPException

NOT_FOUND_MARKERS = ("does not exist", "not found", "no job with id")
CONFLICT_MARKERS = ("already exists",)


def http_status(exc: BaseException, lookup: bool = True) -> int | None:
    """The status for a library error, or None when it is not one we translate.

    ``lookup=False`` for actions whose inputs were already found: a missing thing they mention
    (a base model file, say) is then a bad request, not a missing resource.
    """
    if isinstance(exc, FileNotFoundError):
        return 404 if lookup else 400
    if not isinstance(exc, ValueError):
        return None
    if getattr(exc, "existing", None) is not None:  # results.publish.PublishConflict
        return 409
    message = str(exc).lower()
    if lookup and any(marker in message for marker in NOT_FOUND_MARKERS):
        return 404
    if any(marker in message for marker in CONFLICT_MARKERS):
        return 409
    return 400


@contextlib.contextmanager
def translated_errors(lookup: bool = True) -> Iterator[None]:
    """Run a route body; library errors leave it as ``HTTPException(status, message)``."""
    try:
        yield
    except HTTPException:
        raise
    except Exception as exc:
        status = http_status(exc, lookup)
        if status is None:
            raise
        raise HTTPException(status_code=status, detail=str(exc)) from exc


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} does not exist")


def bad_request(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def required_text(body: dict, key: str) -> str:
    """``body[key]`` when it is a non-empty string; else a 400 naming the key."""
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"'{key}' is required (a non-empty string)")
    return value
