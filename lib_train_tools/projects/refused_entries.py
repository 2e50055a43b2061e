"""Entries the Train tab refused for a field, kept until the field is fixed.

A field whose entry cannot be saved (an empty learning rate, a number out of range) must not look
saved while the previous value goes on being used. The refusal is recorded per version in
``refused_fields.json`` beside the settings: the settings check lists it as a problem and no run
of the version is queued until a valid entry replaces it (or the settings are replaced as a whole).
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_write_json, read_json
from .layout import VersionPaths

REFUSED_FILE = "refused_fields.json"


def _file(version: VersionPaths) -> Path:
    return version.settings_file.with_name(REFUSED_FILE)


def refused_fields(version: VersionPaths) -> dict[str, str]:
    """Field name -> why its last entry was refused (empty when every field holds what it shows)."""
    try:
        data = read_json(_file(version), default={})
    except ValueError:  # a damaged record must not hide the settings; the next save rewrites it
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def refuse_field(version: VersionPaths, name: str, reason: str) -> dict[str, str]:
    """Record that ``name``'s entry was refused because of ``reason``; returns all refusals."""
    with version.lock():
        refused = refused_fields(version)
        refused[name] = reason
        atomic_write_json(_file(version), refused)
    return refused


def accept_fields(version: VersionPaths, names: list[str] | None = None) -> dict[str, str]:
    """Forget the refusals of ``names`` (None: all of them); returns those left."""
    with version.lock():
        refused = refused_fields(version)
        kept = {} if names is None else {k: v for k, v in refused.items() if k not in names}
        if kept != refused:
            atomic_write_json(_file(version), kept)
    return kept


def refusal_problems(refused: dict[str, str]) -> list[str]:
    """The settings check's lines for the refused entries."""
    return [f"{name}: the last entry was refused and is not used ({reason}); enter a valid value"
            for name, reason in sorted(refused.items())]
