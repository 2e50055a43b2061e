"""What UI handlers return, as plain data: a notice for the status line and values for components.

Handlers never touch gradio: they return a ``Reply`` whose ``values`` line up with the event's
outputs. A value is either the component's new value, an ``Update`` (new choices, visibility,
label: anything ``gr.update`` takes) or ``NO_CHANGE``. ``wiring.py`` turns them into gradio
updates; tests read them directly.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("lib_train_tools.ui")

NOTICE_KINDS = ("ok", "info", "warning", "error")


@dataclass(frozen=True)
class Notice:
    kind: str  # "ok", "info", "warning" (it ran, but the result needs a look) or "error" (it did not run)
    text: str

    def __post_init__(self) -> None:
        if self.kind not in NOTICE_KINDS:
            raise ValueError(f"notice kind {self.kind!r} is not one of {NOTICE_KINDS}")


@dataclass(frozen=True)
class Update:
    """Keyword arguments for ``gr.update`` (``value`` included when given)."""

    changes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, **changes: Any) -> "Update":
        return cls(dict(changes))

    def get(self, key: str, default: Any = None) -> Any:
        return self.changes.get(key, default)


@dataclass(frozen=True)
class Table:
    """Rows for a ``gr.Dataframe`` with these column headers (kept even when there are no rows)."""

    headers: tuple[str, ...]
    rows: tuple[tuple, ...]


class _NoChange:
    def __repr__(self) -> str:
        return "NO_CHANGE"


NO_CHANGE = _NoChange()


@dataclass(frozen=True)
class Reply:
    """A notice (None leaves the status line as it is) and one value per output component."""

    notice: Notice | None
    values: tuple = ()


def ok(text: str) -> Notice:
    return Notice("ok", text)


def info(text: str) -> Notice:
    return Notice("info", text)


def warning(text: str) -> Notice:
    return Notice("warning", text)


def choices(options: list[str], value: Any) -> Update:
    """A dropdown's new choices and selection."""
    return Update.of(choices=list(options), value=value)


def error_notice(exc: BaseException) -> Notice:
    """The message a person should see for ``exc``; unexpected errors also name their type."""
    if isinstance(exc, (ValueError, OSError, RuntimeError, KeyError, LookupError)):
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        log.warning("train tools: %s", text)
        return Notice("error", str(text) or type(exc).__name__)
    log.exception("train tools: unexpected error")
    return Notice("error", f"unexpected error ({type(exc).__name__}: {exc}); the console has the details")


def notice_html(notice: Notice) -> str:
    """The status line's HTML (text escaped; line breaks kept)."""
    icon = {"ok": "✔", "info": "ℹ", "warning": "⚠", "error": "✖"}[notice.kind]
    body = "<br>".join(html.escape(line) for line in notice.text.splitlines() or [""])
    return f'<div class="tt-notice tt-{notice.kind}">{icon} {body}</div>'
