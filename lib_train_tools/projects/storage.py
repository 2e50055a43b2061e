"""Projects and versions under one root folder: create, list, rename, duplicate, delete, restore.

Layout: ``<root>/projects/<project>/versions/<version>/`` (see ``layout.py``), deleted items in
``<root>/trash/<entry>/`` (restorable), lock files in ``<root>/.locks/``. Structural changes hold
the store-wide lock; a change to one version also holds that version's lock, so a dataset
operation in another process never sees a version vanish under it. Names are compared without
regard to case because Windows and macOS folders are case-insensitive.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..atomic import FileLock, atomic_write_json, create_json_once, read_json
from .layout import VersionPaths
from .names import validate_name

PROJECT_META = "project.json"
VERSION_META = "version.json"
TRASH_META = "trash.json"


class StoreError(ValueError):
    """A project, version or trash entry is missing, already exists, or cannot be changed."""


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    path: Path
    created_at: float
    updated_at: float
    version_count: int


@dataclass(frozen=True)
class VersionInfo:
    project: str
    name: str
    path: Path
    version_id: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class TrashEntry:
    entry_id: str
    kind: str  # "project" or "version"
    project: str
    version: str
    deleted_at: float
    path: Path


class Store:
    """All projects under ``root``; ``clock`` gives timestamps (injectable for tests)."""

    def __init__(self, root: str | os.PathLike, clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.clock = clock
        self.projects_dir = self.root / "projects"
        self.trash_dir = self.root / "trash"
        self.locks_dir = self.root / ".locks"

    # ----- projects -----
    def create_project(self, name: str) -> ProjectInfo:
        name = validate_name(name, "project name")
        with self._lock():
            self._refuse_existing(self.projects_dir, name, "project")
            folder = self.projects_dir / name
            (folder / "versions").mkdir(parents=True)
            now = self.clock()
            atomic_write_json(folder / PROJECT_META, {"name": name, "created_at": now, "updated_at": now})
        return self.project_info(name)

    def list_projects(self) -> list[ProjectInfo]:
        """Projects, most recently changed first."""
        names = _subfolders(self.projects_dir)
        infos = [self.project_info(n) for n in names]
        return sorted(infos, key=lambda p: (-p.updated_at, p.name))

    def project_info(self, name: str) -> ProjectInfo:
        folder = self._project_dir(name)
        meta = read_json(folder / PROJECT_META, default={}) or {}
        created = float(meta.get("created_at", folder.stat().st_mtime))
        versions = [self._version_meta(folder.name, v) for v in _subfolders(folder / "versions")]
        updated = max([float(meta.get("updated_at", created))] + [float(v["updated_at"]) for v in versions])
        return ProjectInfo(folder.name, folder, created, updated, len(versions))

    def rename_project(self, old: str, new: str) -> ProjectInfo:
        new = validate_name(new, "project name")
        with self._lock():
            folder = self._project_dir(old)
            self._refuse_existing(self.projects_dir, new, "project", allow=folder.name)
            with self._version_locks(folder.name):
                os.replace(folder, self.projects_dir / new)
            self._stamp(self.projects_dir / new / PROJECT_META, name=new)
        return self.project_info(new)

    def delete_project(self, name: str) -> TrashEntry:
        """Move the project (all its versions) to the trash."""
        with self._lock():
            folder = self._project_dir(name)
            with self._version_locks(folder.name):
                return self._move_to_trash(folder, "project", folder.name, "")

    # ----- versions -----
    def create_version(self, project: str, name: str) -> VersionInfo:
        name = validate_name(name, "version name")
        with self._lock():
            versions = self._project_dir(project) / "versions"
            self._refuse_existing(versions, name, f"version of {project!r}")
            folder = versions / name
            for sub in ("dataset/origin", "dataset/processed", "dataset/reg", "trains"):
                (folder / sub).mkdir(parents=True)
            now = self.clock()
            meta = {"name": name, "id": uuid.uuid4().hex, "created_at": now, "updated_at": now}
            atomic_write_json(folder / VERSION_META, meta)
        return self.version_info(project, name)

    def list_versions(self, project: str) -> list[VersionInfo]:
        """Versions of ``project``, most recently changed first."""
        versions = self._project_dir(project) / "versions"
        infos = [self.version_info(project, v) for v in _subfolders(versions)]
        return sorted(infos, key=lambda v: (-v.updated_at, v.name))

    def version_info(self, project: str, name: str) -> VersionInfo:
        folder = self._version_dir(project, name)
        meta = self._version_meta(folder.parent.parent.name, folder.name)
        return VersionInfo(
            folder.parent.parent.name, folder.name, folder, meta["id"], meta["created_at"], meta["updated_at"]
        )

    def version(self, project: str, name: str) -> VersionPaths:
        """The paths (and lock) of an existing version."""
        info = self.version_info(project, name)
        lock_file = self.locks_dir / f"{info.version_id}.lock"
        return VersionPaths(info.path, info.project, info.name, info.version_id, lock_file)

    def rename_version(self, project: str, old: str, new: str) -> VersionInfo:
        new = validate_name(new, "version name")
        with self._lock():
            paths = self.version(project, old)
            self._refuse_existing(paths.root.parent, new, f"version of {project!r}", allow=paths.name)
            with paths.lock():
                os.replace(paths.root, paths.root.parent / new)
            self._stamp(paths.root.parent / new / VERSION_META, name=new)
        return self.version_info(project, new)

    def duplicate_version(self, project: str, source: str, new: str) -> VersionInfo:
        """Copy a version's settings and dataset (not its training runs) to a new version."""
        new = validate_name(new, "version name")
        with self._lock():
            paths = self.version(project, source)
            self._refuse_existing(paths.root.parent, new, f"version of {project!r}")
            staging = paths.root.parent / f".copy-{uuid.uuid4().hex[:8]}"
            try:
                with paths.lock():
                    shutil.copytree(paths.dataset, staging / "dataset", symlinks=True)
                    if paths.settings_file.exists():
                        shutil.copy2(paths.settings_file, staging / paths.settings_file.name)
                (staging / "trains").mkdir()
                now = self.clock()
                meta = {"name": new, "id": uuid.uuid4().hex, "created_at": now, "updated_at": now}
                atomic_write_json(staging / VERSION_META, meta)
                os.replace(staging, paths.root.parent / new)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return self.version_info(project, new)

    def delete_version(self, project: str, name: str) -> TrashEntry:
        """Move the version to the trash (restorable with ``restore``)."""
        with self._lock():
            paths = self.version(project, name)
            with paths.lock():
                return self._move_to_trash(paths.root, "version", paths.project, paths.name)

    def touch(self, version: VersionPaths) -> None:
        """Record that the version changed now (for most-recent-first listings)."""
        self._stamp(version.meta_file)

    # ----- trash -----
    def list_trash(self) -> list[TrashEntry]:
        """Deleted projects and versions, most recently deleted first."""
        entries = []
        for entry_id in _subfolders(self.trash_dir):
            meta = read_json(self.trash_dir / entry_id / TRASH_META, default=None)
            if meta:
                entries.append(self._trash_entry(entry_id, meta))
        return sorted(entries, key=lambda e: (-e.deleted_at, e.entry_id))

    def restore(self, entry_id: str, new_name: str | None = None) -> Path:
        """Put a trashed project or version back (under ``new_name`` if given); returns its folder."""
        with self._lock():
            entry = self._find_trash(entry_id)
            if entry.kind == "project":
                name = validate_name(new_name or entry.project, "project name")
                parent = self.projects_dir
                self._refuse_existing(parent, name, "project")
            else:
                name = validate_name(new_name or entry.version, "version name")
                parent = self._project_dir(entry.project) / "versions"
                self._refuse_existing(parent, name, f"version of {entry.project!r}")
            parent.mkdir(parents=True, exist_ok=True)
            os.replace(entry.path / "item", parent / name)
            self._stamp(parent / name / (PROJECT_META if entry.kind == "project" else VERSION_META), name=name)
            shutil.rmtree(entry.path)
        return parent / name

    def purge(self, entry_id: str) -> None:
        """Delete a trash entry for good."""
        with self._lock():
            shutil.rmtree(self._find_trash(entry_id).path)

    # ----- helpers -----
    def _lock(self) -> FileLock:
        return FileLock(self.locks_dir / "store.lock", what=f"the project store {self.root}")

    @contextlib.contextmanager
    def _version_locks(self, project: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for name in _subfolders(self.projects_dir / project / "versions"):
                stack.enter_context(self.version(project, name).lock())
            yield

    def _project_dir(self, name: str) -> Path:
        folder = self.projects_dir / validate_name(name, "project name")
        if not (folder / "versions").is_dir():
            raise StoreError(f"project {name!r} does not exist in {self.projects_dir}")
        return folder

    def _version_dir(self, project: str, name: str) -> Path:
        folder = self._project_dir(project) / "versions" / validate_name(name, "version name")
        if not folder.is_dir():
            raise StoreError(f"version {name!r} of project {project!r} does not exist")
        return folder

    def _version_meta(self, project: str, name: str) -> dict:
        """Read version.json; a hand-made version folder gets one written on first sight.

        Processes meeting the folder at once agree on its id (the first file written wins), since
        the id names the version's lock file.
        """
        meta_file = self.projects_dir / project / "versions" / name / VERSION_META
        meta = read_json(meta_file, default=None)
        if not isinstance(meta, dict) or "id" not in meta:
            mtime = meta_file.parent.stat().st_mtime
            fresh = {"name": name, "id": uuid.uuid4().hex, "created_at": mtime, "updated_at": mtime}
            if meta is None:
                created = create_json_once(meta_file, fresh)
                meta = fresh if created else read_json(meta_file, default=None)
            if not isinstance(meta, dict) or "id" not in meta:  # a damaged file: replace it
                meta = fresh
                atomic_write_json(meta_file, meta)
        return meta

    @staticmethod
    def _refuse_existing(parent: Path, name: str, what: str, allow: str = "") -> None:
        wanted = name.casefold()
        for existing in _subfolders(parent):
            if existing.casefold() == wanted and existing != allow:
                raise StoreError(f"a {what} named {existing!r} already exists (names ignore upper/lower case)")

    def _stamp(self, meta_file: Path, **changes: object) -> None:
        meta = read_json(meta_file, default={}) or {}
        meta.update(changes)
        meta["updated_at"] = self.clock()
        atomic_write_json(meta_file, meta)

    def _move_to_trash(self, folder: Path, kind: str, project: str, version: str) -> TrashEntry:
        now = self.clock()
        entry_id = f"{int(now * 1000)}-{kind}-{uuid.uuid4().hex[:8]}"
        entry_dir = self.trash_dir / entry_id
        entry_dir.mkdir(parents=True)
        meta = {"kind": kind, "project": project, "version": version, "deleted_at": now}
        atomic_write_json(entry_dir / TRASH_META, meta)
        os.replace(folder, entry_dir / "item")
        return self._trash_entry(entry_id, meta)

    def _find_trash(self, entry_id: str) -> TrashEntry:
        meta = read_json(self.trash_dir / entry_id / TRASH_META, default=None) if "/" not in entry_id else None
        if not meta:
            raise StoreError(f"trash entry {entry_id!r} does not exist in {self.trash_dir}")
        return self._trash_entry(entry_id, meta)

    def _trash_entry(self, entry_id: str, meta: dict) -> TrashEntry:
        return TrashEntry(
            entry_id, meta["kind"], meta["project"], meta["version"], float(meta["deleted_at"]),
            self.trash_dir / entry_id,
        )


def _subfolders(parent: Path) -> list[str]:
    """Visible subfolder names (hidden ones are our staging folders)."""
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
