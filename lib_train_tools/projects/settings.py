"""A version's saved training settings: a plain JSON dict in ``settings.json``.

The trainer's parameter registry (``lib_train_tools/train``) decides what the keys mean; here they
are only stored, atomically and under the version's lock. Functions ending in ``_unlocked`` are
for callers that already hold the lock.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..atomic import atomic_write_json, read_json
from .layout import VersionPaths


class SettingsError(ValueError):
    """The settings file is unreadable or the settings are not a JSON object."""


def load_settings(version: VersionPaths) -> dict[str, Any]:
    """The saved settings, or an empty dict when none were saved."""
    try:
        data = read_json(version.settings_file, default={})
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{version.settings_file}: expected a JSON object, found {type(data).__name__}")
    return data


def save_settings(version: VersionPaths, settings: Mapping[str, Any]) -> None:
    """Replace the saved settings with ``settings``."""
    with version.lock():
        save_settings_unlocked(version, settings)


def save_settings_unlocked(version: VersionPaths, settings: Mapping[str, Any]) -> None:
    if not isinstance(settings, Mapping):
        raise SettingsError(f"settings for {version.name!r} must be a mapping, got {type(settings).__name__}")
    atomic_write_json(version.settings_file, dict(settings))


def update_settings(version: VersionPaths, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the saved settings; returns the new settings."""
    with version.lock():
        return update_settings_unlocked(version, changes)


def update_settings_unlocked(version: VersionPaths, changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = load_settings(version)
    merged.update(changes)
    save_settings_unlocked(version, merged)
    return merged
