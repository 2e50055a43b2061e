"""The Dataset tab's "Import from a booru" handlers: the form's values, the preview table, the import's
report, notice and gallery refresh. Against a stand-in Danbooru/Gelbooru on 127.0.0.1."""

from __future__ import annotations

import pytest

from lib_train_tools.datasets.booru_import import booru_sources
from lib_train_tools.projects import StoreError
from lib_train_tools.ui import booru_actions as actions

from ..datasets.booru_standin import BooruStandIn, StandInPost


@pytest.fixture
def danbooru():
    posts = [StandInPost(4, tags=("1girl", "smile"), rating="explicit", size=(80, 80)),
             StandInPost(3, tags=("1girl", "long_hair", "<b>"), size=(80, 60)),
             StandInPost(2, tags=("1girl",), deleted=True, size=(80, 60)),
             StandInPost(1, tags=("1girl", "smile"), size=(40, 30))]
    server = BooruStandIn("danbooru", posts).start()
    yield server
    server.stop()


def form(server: BooruStandIn, **changes) -> list:
    values = dict(site="Danbooru", tags="1girl", count=10, ratings=["general", "sensitive"], min_side=0,
                  user="", api_key="", address=server.endpoint)
    values.update(changes)
    return list(values.values())


def test_preview_lists_the_posts_an_import_would_fetch(services, selection, danbooru):
    reply = actions.preview_import(services, selection, *form(danbooru, min_side=50), min_interval=0)
    table = reply.values[0]
    assert reply.notice.kind == "warning" and reply.notice.text == (
        "2 image(s) from Danbooru would be imported; press Import to fetch them (fewer than the 10 asked for: "
        "the booru has no more posts for these tags; 2 left out)")
    assert "danbooru #3" in table and "80×60" in table and "long hair" in table and "&lt;b&gt;" in table
    assert f'href="{danbooru.endpoint}/posts/3"' in table
    assert "danbooru #4: rating explicit" in table and "danbooru #1: 40x30 is under the minimum side of 50" in table
    version = services.store.version(*selection.split("/"))
    assert list(version.origin.iterdir()) == []  # a preview downloads nothing
    assert [path for path, _, _ in danbooru.requests] == ["/posts.json"]


def test_import_fills_the_gallery_and_lists_the_failed_post(services, selection, danbooru):
    steps = []
    reply = actions.run_import(services, selection, *form(danbooru), progress=lambda *s: steps.append(s),
                               min_interval=0)
    report, gallery, note = reply.values[0], reply.values[1], reply.values[2]
    assert reply.notice.kind == "warning"
    assert reply.notice.text.startswith("2 image(s) imported from Danbooru with their tags as captions, "
                                        "0 already there, 1 failed")
    assert "danbooru #2: not found (HTTP 404" in report and "danbooru_3.png" in report
    assert sorted(label for _, label in gallery) == ["1girl, long hair, <b>", "1girl, smile"]
    assert "2 uploaded image(s)" in note
    assert [s[:2] for s in steps] == [(1, 3), (2, 3), (3, 3)]
    version = services.store.version(*selection.split("/"))
    assert sorted(booru_sources(version)) == ["danbooru_1.png", "danbooru_3.png"]
    again = actions.run_import(services, selection, *form(danbooru), min_interval=0)
    assert again.notice.text.startswith("0 image(s) imported from Danbooru with their tags as captions, "
                                        "0 already there, 1 failed")  # the deleted post is tried again
    nothing = actions.run_import(services, selection, *form(danbooru, tags="smile"), min_interval=0)
    assert nothing.notice.kind == "warning" and nothing.notice.text.startswith("Danbooru has nothing new")


def test_gelbooru_with_credentials(services, selection):
    server = BooruStandIn("gelbooru", [StandInPost(7, tags=("solo", "blue_sky"))]).start()
    try:
        server.required_key = ("42", "k3y")
        reply = actions.run_import(services, selection, *form(server, site="Gelbooru", tags="solo", user="42",
                                                              api_key="k3y", ratings=[]), min_interval=0)
    finally:
        server.stop()
    assert reply.notice.kind == "ok" and reply.notice.text.startswith("1 image(s) imported from Gelbooru")
    assert [label for _, label in reply.values[1]] == ["blue sky, solo"]


def test_form_values_are_checked_before_any_request(services, selection, danbooru):
    with pytest.raises(ValueError, match="both the login .* and the API key"):
        actions.preview_import(services, selection, *form(danbooru, user="me"), min_interval=0)
    with pytest.raises(ValueError, match="type the tags"):
        actions.preview_import(services, selection, *form(danbooru, tags=" "), min_interval=0)
    with pytest.raises(ValueError, match="number of images must be a whole number"):
        actions.preview_import(services, selection, *form(danbooru, count=2.5), min_interval=0)
    with pytest.raises(ValueError, match="choose a booru"):
        actions.preview_import(services, selection, *form(danbooru, site="Pixiv"), min_interval=0)
    with pytest.raises(StoreError, match="choose or create a project"):
        actions.run_import(services, "", *form(danbooru), min_interval=0)
    assert danbooru.requests == []
    assert actions.booru_query("a", None, None, None).count == actions.DEFAULT_COUNT
    assert actions.booru_client("Safebooru", "", "", "").base == "https://safebooru.org"


def test_the_box_is_in_the_dataset_tab_and_import_refreshes_the_gallery(services):
    from lib_train_tools.ui.app import build_ui

    demo = build_ui(services)
    by_id = {b.elem_id: b._id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    fields = ["tt_booru_site", "tt_booru_tags", "tt_booru_count", "tt_booru_ratings", "tt_booru_min_side",
              "tt_booru_user", "tt_booru_key", "tt_booru_address"]
    assert {"tt_booru", "tt_booru_preview", "tt_booru_import", "tt_booru_report", "tt_booru_feedback"} <= set(by_id)
    events = {}
    for dependency in demo.get_config_file()["dependencies"]:
        for trigger in dependency.get("targets") or []:
            target = trigger[0] if isinstance(trigger, (list, tuple)) else trigger
            events[target] = dependency
    for button in ("tt_booru_preview", "tt_booru_import"):
        event = events[by_id[button]]
        assert event["inputs"][1:] == [by_id[f] for f in fields]
        assert event["outputs"][:3] == [by_id["tt_status"], by_id["tt_booru_feedback"], by_id["tt_booru_report"]]
    assert by_id["tt_gallery"] in events[by_id["tt_booru_import"]]["outputs"]
    assert by_id["tt_gallery"] not in events[by_id["tt_booru_preview"]]["outputs"]
