"""Handlers of the project and version pickers (plain functions; no gradio).

Every handler returns a ``Reply`` whose values are, in order: the project dropdown, the version
dropdown, the selection key (``project/version``) and the name box (cleared after a change).
Deleting moves to the trash; "restore" brings back the most recently deleted item.
"""

from __future__ import annotations

from ..projects import StoreError
from .replies import NO_CHANGE, Reply, choices, info, ok
from .selection import selection_key


def picker_state(services, project: str | None = None, version: str | None = None, clear_name: bool = False) -> tuple:
    """Dropdown choices and selection; unknown or missing names fall back to the most recent."""
    projects = [p.name for p in services.store.list_projects()]
    project = _pick(project, projects)
    versions = [v.name for v in services.store.list_versions(project)] if project else []
    version = _pick(version, versions)
    name_box = "" if clear_name else NO_CHANGE
    return (choices(projects, project), choices(versions, version), selection_key(project, version), name_box)


def _pick(wanted: str | None, names: list[str]) -> str | None:
    if wanted:
        folded = {n.casefold(): n for n in names}
        if wanted.casefold() in folded:
            return folded[wanted.casefold()]
    return names[0] if names else None


def load(services) -> Reply:
    """The page opened: the most recently changed project and version."""
    state = picker_state(services)
    notice = None if state[0].get("value") else info("create a project to begin: type a name and press Create project")
    return Reply(notice, state)


def refresh(services, project: str | None, version: str | None) -> Reply:
    return Reply(None, picker_state(services, project, version))


def select_project(services, project: str | None) -> Reply:
    return Reply(None, picker_state(services, project))


def select_version(services, project: str | None, version: str | None) -> Reply:
    return Reply(None, picker_state(services, project, version))


def create_project(services, name: str) -> Reply:
    created = services.store.create_project(name or "")
    notice = ok(f"created project {created.name!r}; now create a version of it")
    return Reply(notice, picker_state(services, created.name, clear_name=True))


def rename_project(services, project: str | None, new_name: str) -> Reply:
    renamed = services.store.rename_project(_required(project, "project"), new_name or "")
    notice = ok(f"renamed project {project!r} to {renamed.name!r}")
    return Reply(notice, picker_state(services, renamed.name, clear_name=True))


def delete_project(services, project: str | None) -> Reply:
    entry = services.store.delete_project(_required(project, "project"))
    notice = ok(f"moved project {entry.project!r} to the trash (Restore brings it back)")
    return Reply(notice, picker_state(services))


def create_version(services, project: str | None, name: str) -> Reply:
    created = services.store.create_version(_required(project, "project"), name or "")
    notice = ok(f"created version {created.name!r} of {created.project!r}; add images in the Dataset tab")
    return Reply(notice, picker_state(services, created.project, created.name, clear_name=True))


def rename_version(services, project: str | None, version: str | None, new_name: str) -> Reply:
    project, version = _required(project, "project"), _required(version, "version")
    renamed = services.store.rename_version(project, version, new_name or "")
    notice = ok(f"renamed version {version!r} to {renamed.name!r}")
    return Reply(notice, picker_state(services, renamed.project, renamed.name, clear_name=True))


def duplicate_version(services, project: str | None, version: str | None, new_name: str) -> Reply:
    source = _required(version, "version")
    copied = services.store.duplicate_version(_required(project, "project"), source, new_name or "")
    notice = ok(f"copied version {source!r} (dataset and settings, not its training runs) to {copied.name!r}")
    return Reply(notice, picker_state(services, copied.project, copied.name, clear_name=True))


def delete_version(services, project: str | None, version: str | None) -> Reply:
    entry = services.store.delete_version(_required(project, "project"), _required(version, "version"))
    notice = ok(f"moved version {entry.version!r} of {entry.project!r} to the trash (Restore brings it back)")
    return Reply(notice, picker_state(services, entry.project))


def restore_last(services) -> Reply:
    """Bring back the most recently deleted project or version."""
    entries = services.store.list_trash()
    if not entries:
        raise StoreError("the trash is empty: nothing to restore")
    entry = entries[0]
    services.store.restore(entry.entry_id)
    if entry.kind == "project":
        return Reply(ok(f"restored project {entry.project!r}"), picker_state(services, entry.project))
    notice = ok(f"restored version {entry.version!r} of {entry.project!r}")
    return Reply(notice, picker_state(services, entry.project, entry.version))


def _required(name: str | None, what: str) -> str:
    if not name:
        raise StoreError(f"choose a {what} first")
    return name
