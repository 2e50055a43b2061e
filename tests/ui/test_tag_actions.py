"""Tag editor handlers: the tag table, activation tag, prune, merge, add, per-image edit, undo."""

from __future__ import annotations

import pytest

from lib_train_tools.datasets.tag_journal import CurationError
from lib_train_tools.projects import load_settings
from lib_train_tools.ui import tag_actions as actions


def captions(reply) -> list[str]:
    return [caption for _path, caption in reply.values[0]]


def table_rows(reply) -> tuple:
    return reply.values[4].rows


def test_tag_table_counts_and_filters(services, processed):
    version = services.store.version("テスト", "v1")
    table = actions.tag_table(version)
    assert table.headers == ("tag", "images", "share")
    assert table.rows[0] == ("1girl", 6, "100%")
    assert ("smile", 4, "67%") in table.rows
    assert [r[0] for r in actions.filter_tags(services, processed, "BLOND").values[0].rows] == ["blonde_hair"]


def test_activation_tag_goes_first_and_sets_keep_tokens(services, processed):
    reply = actions.set_activation(services, processed, "mychar")
    assert all(c.startswith("mychar, ") for c in captions(reply))
    assert reply.values[6] == "mychar"
    assert ("mychar", 6, "100%") in table_rows(reply)
    assert load_settings(services.store.version("テスト", "v1"))["keep_tokens"] == 1
    assert "keep_tokens" in reply.notice.text
    files = sorted(services.store.version("テスト", "v1").processed_dir().glob("*.txt"))
    assert files[0].read_text(encoding="utf-8").startswith("mychar, ")


def test_prune_merge_add_and_undo(services, processed):
    reply = actions.prune(services, processed, ["smile"])
    assert not any("smile" in c for c in captions(reply))
    reply = actions.merge(services, processed, ["blonde_hair", "striped shirt"], "look")
    assert ("look", 6, "100%") in table_rows(reply)
    reply = actions.add_to_all(services, processed, "solo")
    assert all(c.endswith("solo") for c in captions(reply))
    reply = actions.undo_last(services, processed)
    assert not any("solo" in c for c in captions(reply))
    reply = actions.undo_last(services, processed)
    assert ("blonde_hair", 4, "67%") in table_rows(reply)


def test_edit_one_caption_and_pick_images(services, processed):
    reply = actions.edit(services, processed, "pic01", "a new caption, by hand")
    assert reply.values[2].get("value") == "pic01" and reply.values[3] == "a new caption, by hand"
    assert actions.pick_image(services, processed, "pic01").values == ("a new caption, by hand",)
    picked = actions.pick_from_gallery(services, processed, 1, None)
    assert picked.values[0].get("value") == "pic01" and picked.values[1] == "a new caption, by hand"
    with pytest.raises(CurationError, match="choose an image"):
        actions.edit(services, processed, None, "x")


def test_clicking_table_rows_chooses_tags(services, processed):
    first = actions.pick_from_table(services, processed, "", [], [0, 2], "100%")
    assert first.values[0].get("value") == ["1girl"]
    again = actions.pick_from_table(services, processed, "", ["1girl"], [0, 0], "1girl")
    assert again.values[0].get("value") == ["1girl"]
    filtered = actions.pick_from_table(services, processed, "striped", ["1girl"], [0, 1], 2)
    assert filtered.values[0].get("value") == ["1girl", "striped shirt"]


def test_refusals_explain(services, processed):
    with pytest.raises(CurationError, match="without commas"):
        actions.set_activation(services, processed, "a, b")
    with pytest.raises(CurationError, match="no tags to prune"):
        actions.prune(services, processed, [])


def test_before_preprocessing_the_editor_says_what_to_do(services, selection):
    with pytest.raises(CurationError, match="preprocess the dataset first"):
        actions.set_activation(services, selection, "mychar")
    assert actions.tags_values(services.store.version("テスト", "v1"))[0].rows == ()


def test_activation_tag_is_kept_as_the_run_setting(services, processed):
    version = services.store.version("テスト", "v1")
    actions.set_activation(services, processed, "mychar")
    assert load_settings(version)["activation_tag"] == "mychar"
    actions.undo_last(services, processed)
    assert load_settings(version)["activation_tag"] is None
    assert "keep_tokens" not in load_settings(version)
