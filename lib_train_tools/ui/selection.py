"""The current project and version as one text value, shared by every panel.

The projects panel writes ``"<project>/<version>"`` (empty when nothing is chosen) into a hidden
textbox; the other panels reload when it changes. One value for both names means that switching
from ``A/v1`` to ``B/v1`` is a change too, which watching the version name alone would miss.
Names cannot contain a slash, so the text splits back unambiguously.
"""

from __future__ import annotations

from ..projects import StoreError, VersionPaths

SEPARATOR = "/"


def selection_key(project: str | None, version: str | None) -> str:
    return f"{project}{SEPARATOR}{version}" if project and version else ""


def parse_selection(text: str | None) -> tuple[str, str] | None:
    """(project, version), or None when nothing is chosen."""
    if not text or SEPARATOR not in text:
        return None
    project, _, version = text.partition(SEPARATOR)
    return (project, version) if project and version else None


def require_version(services, selection: str | None) -> VersionPaths:
    """The chosen version's paths; StoreError with what to do when none is chosen."""
    chosen = parse_selection(selection)
    if chosen is None:
        raise StoreError("choose or create a project and a version first")
    return services.store.version(*chosen)
