"""Validation of the names people type for projects and versions.

A name becomes a folder name as typed (Japanese, emoji and spaces included), so it must be a
valid single folder name on Linux, macOS and Windows alike. Names that cannot be one raise
``InvalidNameError`` whose message says which rule the name breaks.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 80
# Most file systems cap one path component at 255 bytes (UTF-8 Japanese takes 3 bytes a character,
# an emoji 4). Folder and file names are built from these names (``<repeats>_<project>`` under
# ``processed/``, output files with epoch suffixes), so a name keeps 55 bytes free for those.
MAX_NAME_BYTES = 200
WINDOWS_FORBIDDEN_CHARS = '<>:"|?*'
WINDOWS_RESERVED_STEMS = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


class InvalidNameError(ValueError):
    """A project or version name cannot be a folder name; ``reason`` says why."""

    def __init__(self, name: str, reason: str, kind: str = "name"):
        self.name = name
        self.reason = reason
        self.kind = kind
        super().__init__(f"{kind} {name!r} cannot be used: {reason}")


def validate_name(name: str, kind: str = "name") -> str:
    """Return ``name`` normalised (NFC, surrounding whitespace removed) or raise ``InvalidNameError``.

    ``kind`` ("project name", "version name") only appears in the message.
    """
    if not isinstance(name, str):
        raise InvalidNameError(repr(name), "a name must be text", kind)
    cleaned = unicodedata.normalize("NFC", name).strip()
    reason = _first_broken_rule(cleaned)
    if reason:
        raise InvalidNameError(name, reason, kind)
    return cleaned


def _first_broken_rule(name: str) -> str:
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "'.' and '..' mean the current and parent folder"
    if name.startswith("."):
        return "it starts with a dot, which hides the folder"
    if "/" in name or "\\" in name:
        return "it contains a slash, which separates folders"
    control = [ch for ch in name if unicodedata.category(ch) == "Cc"]
    if control:
        return f"it contains a control character ({ascii(control[0])})"
    forbidden = [ch for ch in name if ch in WINDOWS_FORBIDDEN_CHARS]
    if forbidden:
        return f"it contains {forbidden[0]!r}, which Windows does not allow in folder names"
    if name.endswith("."):
        return "it ends with a dot, which Windows drops from folder names"
    stem = name.split(".")[0].strip().upper()
    if stem in WINDOWS_RESERVED_STEMS:
        return f"{stem} is a reserved device name on Windows"
    if len(name) > MAX_NAME_CHARS:
        return f"it is {len(name)} characters long (at most {MAX_NAME_CHARS})"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"it takes {len(name.encode('utf-8'))} bytes in UTF-8 (at most {MAX_NAME_BYTES})"
    return ""
