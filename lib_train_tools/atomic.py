"""Atomic file writes and a cross-process lock, so two processes never corrupt a file.

Every file the package writes goes first to a hidden temporary file in the target's folder, which is
then renamed over the target (``os.replace`` is atomic on POSIX and Windows): a reader sees the old
file or the new one, never half of one, and a failed write removes its temporary. ``atomic_path``
does this for any writer; it creates the temporary file itself (mode 0o666 less the umask) and
restores that mode before the rename, so the result has the usual permissions of a new file even
when the writer makes owner-only files (recent safetensors versions do). Nothing is flushed to disk
unless the writer does it (``atomic_write_bytes`` does).

Every temporary name follows one scheme, ``.tt-tmp-<target name>.<pid>-<8 hex>.tmp`` (files, and
the trainer's state folders), so ``temporary_target`` can tell a leftover of ours (a killed
process's) from anything else; it also knows the older ``.<target name>.<pid>-<8 hex>.tmp``.
``FileLock`` is an exclusive advisory lock on a lock file (``fcntl`` on POSIX, ``msvcrt`` on
Windows). It is not re-entrant: code that already holds a lock calls the unlocked helpers instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

DEFAULT_LOCK_TIMEOUT_S = 60.0
_POLL_INTERVAL_S = 0.05


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the timeout."""


TEMP_NAME_BYTES = 200  # of the target's name kept in a temporary name (a name may have up to 255)
TEMP_PREFIX = ".tt-tmp-"
_TEMP_TAIL = r"\.(?P<pid>\d+)-(?P<tag>[0-9a-f]{8})\.tmp"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(?P<target>.+)" + _TEMP_TAIL, re.DOTALL)
_OLDER_TEMP_NAME = re.compile(r"\.(?P<target>.+)" + _TEMP_TAIL, re.DOTALL)  # before TEMP_PREFIX


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A hidden, unique name next to ``path`` for writing before the rename.

    After ``TEMP_PREFIX`` comes (at most ``TEMP_NAME_BYTES`` of) the target's name, so a leftover says
    what it was, and stays within the 255-byte file-name limit even for the longest target names.
    """
    target = Path(path)
    name = target.name.encode("utf-8")[:TEMP_NAME_BYTES].decode("utf-8", "ignore")
    return target.with_name(f"{TEMP_PREFIX}{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def temporary_target(name: str) -> str | None:
    """The name a temporary of ours was written for (``temporary_sibling``'s scheme, or the older
    one without ``TEMP_PREFIX``); None for any other name. Long targets come back shortened."""
    match = _TEMP_NAME.fullmatch(name) or _OLDER_TEMP_NAME.fullmatch(name)
    return match.group("target") if match else None


NEW_FILE_MODE = 0o666  # less the umask: the permissions any new file gets


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, create: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    With ``create`` the temporary file is created here, exclusively, with ``NEW_FILE_MODE`` less the
    umask, and the result keeps that mode whatever the writer did to it. ``create=False`` leaves the
    name free for a writer that must make the file itself (``os.link``); it keeps the writer's mode.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(target)
    mode = _create_new(tmp) if create else None
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_new(path: Path) -> int:
    """Create the empty file ``path`` (never an existing one); its permission bits."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, NEW_FILE_MODE))
    return stat.S_IMODE(os.stat(path).st_mode)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        _write_synced(tmp, data)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON (non-ASCII kept readable) atomically."""
    atomic_write_bytes(path, _json_bytes(data))


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def create_json_once(path: str | os.PathLike, data: Any) -> bool:
    """Write ``data`` as JSON to ``path`` only if no file is there; False when one already was.

    The complete file is linked into place, so of processes racing to create it the first wins and
    every reader sees a whole file. Where hard links are not supported it falls back to a rename.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(target)
    try:
        _write_synced(tmp, _json_bytes(data))
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system
            if target.exists():
                return False
            os.replace(tmp, target)
        return True
    finally:
        if tmp.exists():
            tmp.unlink()


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it does not exist. A corrupt file raises ``ValueError``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{Path(path).name}: not valid JSON ({exc}) in {path}") from exc


class FileLock:
    """Exclusive lock on ``path`` held inside a ``with`` block; waits up to ``timeout`` seconds."""

    def __init__(self, path: str | os.PathLike, timeout: float = DEFAULT_LOCK_TIMEOUT_S, what: str = ""):
        self.path = Path(path)
        self.timeout = timeout
        self.what = what or self.path.name
        self._handle: BinaryIO | None = None

    def __enter__(self) -> "FileLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")
        deadline = time.monotonic() + self.timeout
        while not _try_lock(handle):
            if time.monotonic() >= deadline:
                handle.close()
                raise LockTimeout(
                    f"{self.what} is busy: another operation held it for over {self.timeout:g} s "
                    f"(lock file {self.path})"
                )
            time.sleep(_POLL_INTERVAL_S)
        self._handle = handle
        return self

    def __exit__(self, *exc_info: object) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            _unlock(handle)
            handle.close()


def _try_lock(handle: Any) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(handle: Any) -> None:
    if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    else:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
