"""Vetting and reading ``.zip`` uploads without trusting the archive.

Entries are checked from the central directory before anything is read: absolute paths, ``..``
components, symbolic links, encrypted entries and nested archives are refused with a reason;
operating-system clutter (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``, ``._*``) is skipped; the
entry count and the declared sizes are limited, and reading stops at the declared size so a
header that lies cannot inflate past the limit. Nothing is extracted to disk here: the caller
gets each entry's bytes and a flat file name, and decides where they go.
"""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass, field

JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
JUNK_FOLDERS = frozenset({"__macosx"})
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_UTF8_NAME_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = 10_000
    max_entry_bytes: int = 200 * 1024 * 1024
    max_total_bytes: int = 4 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class Refusal:
    """One file that did not go in, and why (also used for skipped clutter)."""

    name: str
    reason: str


@dataclass(frozen=True)
class ZipEntry:
    name: str  # flat file name to store under
    label: str  # "archive.zip:folder/name" for messages
    info: zipfile.ZipInfo


@dataclass
class ZipPlan:
    entries: list[ZipEntry] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    skipped: list[Refusal] = field(default_factory=list)


class ZipRefused(ValueError):
    """The whole archive is unusable (not a zip, too many entries)."""


def open_zip(path: str, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ZipRefused(f"{label}: not a valid zip archive ({exc})") from exc


def plan_zip(archive: zipfile.ZipFile, label: str, limits: ZipLimits = ZipLimits()) -> ZipPlan:
    """Sort the archive's entries into usable, refused (with reasons) and skipped clutter."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ZipRefused(f"{label}: {len(infos)} entries is over the limit of {limits.max_entries}")
    plan = ZipPlan()
    total = 0
    for info in infos:
        path = _decoded_name(info)
        entry_label = f"{label}:{path}"
        if path.endswith("/") or path.endswith("\\"):
            continue
        if _is_junk(path):
            plan.skipped.append(Refusal(entry_label, "operating-system metadata, not part of the dataset"))
            continue
        reason = _entry_problem(info, path, limits)
        if not reason and total + info.file_size > limits.max_total_bytes:
            reason = f"the archive's total size would pass the {limits.max_total_bytes}-byte limit"
        if reason:
            plan.refused.append(Refusal(entry_label, reason))
            continue
        total += info.file_size
        plan.entries.append(ZipEntry(_parts(path)[-1], entry_label, info))
    return plan


def read_entry(archive: zipfile.ZipFile, entry: ZipEntry) -> bytes:
    """The entry's bytes; raises ``ValueError`` (with the entry's label) when damaged or oversized."""
    declared = entry.info.file_size
    try:
        with archive.open(entry.info) as handle:
            data = handle.read(declared + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{entry.label}: damaged archive entry ({exc})") from exc
    if len(data) != declared:
        raise ValueError(f"{entry.label}: holds {len(data)}+ bytes but its header says {declared}")
    return data


def _entry_problem(info: zipfile.ZipInfo, path: str, limits: ZipLimits) -> str:
    if path.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(path):
        return "absolute path in the archive (refused for safety)"
    parts = _parts(path)
    if not parts:
        return "entry has no file name"
    if ".." in parts:
        return "path leads outside the archive ('..'), refused for safety"
    if any(ord(ch) < 32 for ch in path):
        return "control character in the entry name"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link (links are never followed)"
    if info.flag_bits & _ENCRYPTED_FLAG:
        return "encrypted entry (no password support)"
    if parts[-1].lower().endswith(".zip"):
        return "a zip inside a zip is not opened; upload it separately"
    if info.file_size > limits.max_entry_bytes:
        return f"{info.file_size} bytes is over the {limits.max_entry_bytes}-byte limit for one file"
    return ""


def _parts(path: str) -> list[str]:
    return [p for p in re.split(r"[\\/]", path) if p not in ("", ".")]


def _is_junk(path: str) -> bool:
    parts = _parts(path)
    if any(p.lower() in JUNK_FOLDERS for p in parts[:-1]):
        return True
    name = parts[-1] if parts else ""
    return name.lower() in JUNK_NAMES or name.startswith("._")


def _decoded_name(info: zipfile.ZipInfo) -> str:
    """Entry name; archives made on Japanese Windows store names in cp932 without the UTF-8 flag."""
    name = info.filename
    if info.flag_bits & _UTF8_NAME_FLAG:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:
        return name
    for encoding in ("utf-8", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return name
