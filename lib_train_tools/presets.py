"""Named presets of training settings: ``<output_root>/presets/<name>.json``.

A preset is a version's settings without the ones tied to that version's dataset (its activation
tag and the ``keep_tokens`` that protects it). Loading one replaces the version's settings and
keeps those dataset-bound ones. Names follow the project-name rules (any language, no slashes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .atomic import atomic_write_json
from .projects.names import validate_name

DATASET_BOUND_KEYS = ("activation_tag", "keep_tokens")
PRESET_SUFFIX = ".json"


class PresetError(ValueError):
    """A preset is missing or unreadable; the message says which and why."""


def portable(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a preset keeps (everything but the dataset-bound keys)."""
    return {k: v for k, v in settings.items() if k not in DATASET_BOUND_KEYS}


def applied(current: Mapping[str, Any], preset: Mapping[str, Any]) -> dict[str, Any]:
    """A version's settings after loading ``preset``: the preset plus the version's dataset-bound keys."""
    result = portable(preset)
    result.update({k: current[k] for k in DATASET_BOUND_KEYS if k in current})
    return result


def list_presets(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    names = [p.stem for p in folder.iterdir() if p.suffix == PRESET_SUFFIX and not p.name.startswith(".")]
    return sorted(names, key=str.casefold)


def save_preset(folder: Path, name: str, settings: Mapping[str, Any]) -> Path:
    """Write (or overwrite) the preset ``name``; returns its file."""
    name = validate_name(name, "preset name")
    path = folder / f"{name}{PRESET_SUFFIX}"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"name": name, "settings": portable(settings)})
    return path


def load_preset(folder: Path, name: str) -> dict[str, Any]:
    name = validate_name(name or "", "preset name")
    path = folder / f"{name}{PRESET_SUFFIX}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PresetError(f"there is no preset called {name!r} in {folder}") from None
    except (OSError, ValueError) as exc:
        raise PresetError(f"preset {name!r} cannot be read ({exc})") from exc
    settings = data.get("settings") if isinstance(data, dict) else None
    if not isinstance(settings, dict):
        raise PresetError(f"preset {name!r} ({path}) has no settings object")
    return settings


def delete_preset(folder: Path, name: str) -> None:
    name = validate_name(name or "", "preset name")
    path = folder / f"{name}{PRESET_SUFFIX}"
    if not path.is_file():
        raise PresetError(f"there is no preset called {name!r} in {folder}")
    path.unlink()
