"""Project and version pickers: every action changes the store and the dropdowns, refusals explain."""

from __future__ import annotations

import pytest

from lib_train_tools.projects import InvalidNameError, StoreError
from lib_train_tools.ui import projects_actions as actions


def picked(reply):
    projects, versions, selection, name_box = reply.values
    return projects.get("choices"), projects.get("value"), versions.get("choices"), versions.get("value"), selection


def test_empty_store_asks_for_a_project(services):
    reply = actions.load(services)
    assert picked(reply) == ([], None, [], None, "")
    assert reply.notice.kind == "info" and "Create project" in reply.notice.text


def test_create_project_and_version_with_japanese_names(services):
    reply = actions.create_project(services, "テスト")
    assert picked(reply) == (["テスト"], "テスト", [], None, "")
    assert reply.values[3] == ""  # the name box is cleared
    reply = actions.create_version(services, "テスト", "初版")
    assert picked(reply) == (["テスト"], "テスト", ["初版"], "初版", "テスト/初版")
    assert (services.output_root / "projects" / "テスト" / "versions" / "初版" / "dataset" / "origin").is_dir()


@pytest.mark.parametrize("name, reason", [("a/b", "slash"), ("", "empty"), ("CON", "reserved"), ("x?", "'?'")])
def test_refused_project_names_say_why(services, name, reason):
    with pytest.raises(InvalidNameError, match=reason):
        actions.create_project(services, name)
    assert services.store.list_projects() == []


def test_duplicate_names_are_refused_ignoring_case(services):
    actions.create_project(services, "Alice")
    with pytest.raises(StoreError, match="already exists"):
        actions.create_project(services, "alice")


def test_rename_duplicate_and_delete_version(services):
    actions.create_project(services, "p")
    actions.create_version(services, "p", "v1")
    version = services.store.version("p", "v1")
    (version.origin / "a.png").write_bytes(b"not really an image")
    reply = actions.duplicate_version(services, "p", "v1", "v2")
    assert picked(reply)[3:] == ("v2", "p/v2")
    assert (services.store.version("p", "v2").origin / "a.png").is_file()
    reply = actions.rename_version(services, "p", "v2", "v3")
    assert sorted(picked(reply)[2]) == ["v1", "v3"] and picked(reply)[4] == "p/v3"
    reply = actions.delete_version(services, "p", "v3")
    assert picked(reply)[2] == ["v1"] and picked(reply)[4] == "p/v1"
    assert "trash" in reply.notice.text


def test_rename_and_delete_project_then_restore(services):
    actions.create_project(services, "old")
    actions.create_version(services, "old", "v1")
    reply = actions.rename_project(services, "old", "新しい")
    assert picked(reply) == (["新しい"], "新しい", ["v1"], "v1", "新しい/v1")
    reply = actions.delete_project(services, "新しい")
    assert picked(reply) == ([], None, [], None, "")
    reply = actions.restore_last(services)
    assert picked(reply)[:2] == (["新しい"], "新しい") and picked(reply)[4] == "新しい/v1"
    with pytest.raises(StoreError, match="trash is empty"):
        actions.restore_last(services)


def test_actions_without_a_selection_explain(services):
    with pytest.raises(StoreError, match="choose a project"):
        actions.create_version(services, None, "v1")
    with pytest.raises(StoreError, match="choose a version"):
        actions.delete_version(services, "p", None)


def test_selecting_a_project_picks_its_most_recent_version(services):
    actions.create_project(services, "a")
    actions.create_version(services, "a", "first")
    actions.create_version(services, "a", "second")
    actions.create_project(services, "b")
    assert picked(actions.select_project(services, "a"))[3] == "second"
    assert picked(actions.select_version(services, "a", "first"))[4] == "a/first"
    assert picked(actions.refresh(services, "a", "gone"))[3] == "second"
