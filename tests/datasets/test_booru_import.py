"""Importing a booru search into origin/: captions, records, duplicates, failing posts, stopping.

Against the stand-in boorus of ``booru_standin.py`` on 127.0.0.1.
"""

from __future__ import annotations

import hashlib


from lib_train_tools.datasets.booru import BooruClient, BooruQuery
from lib_train_tools.datasets.booru_import import (
    booru_caption, booru_sources, import_by_tags, import_posts, preview,
)
from lib_train_tools.datasets.origin_files import list_origin
from lib_train_tools.datasets.upload import add_files, upload

from .booru_standin import BooruStandIn, StandInPost, png_bytes


def client_for(server: BooruStandIn, **options) -> BooruClient:
    options.setdefault("min_interval", 0)
    return BooruClient(server.site, base_url=server.endpoint, **options)


def origin_names(version) -> list[str]:
    return sorted(p.name for p in version.origin.iterdir())


def test_caption_turns_underscores_to_spaces_but_keeps_kaomoji():
    assert booru_caption(["hatsune_miku", "long_hair", "^_^", "o_o", "1girl", "long_hair"]) == \
        "hatsune miku, long hair, ^_^, o_o, 1girl"
    assert booru_caption([]) == ""


def test_import_lands_images_with_captions_and_records_and_lists_the_deleted_post(serve, version):
    posts = [StandInPost(3, tags=("1girl", "long_hair", "^_^"), characters=("hatsune_miku",)),
             StandInPost(2, deleted=True), StandInPost(1, tags=("1girl", "blue_sky"), size=(30, 20))]
    server = serve("danbooru", posts)
    steps: list[tuple[int, int, str]] = []
    found, result = import_by_tags(version, client_for(server), BooruQuery("1girl", count=5),
                                   progress=lambda d, t, n: steps.append((d, t, n)))
    assert [p.post_id for p in found.posts] == [3, 2, 1]
    assert result.added == ("danbooru_3.png", "danbooru_1.png") and result.skipped == ()
    assert [(r.name, r.reason) for r in result.failed] == [
        ("danbooru #2", f"not found (HTTP 404 from 127.0.0.1:{server.endpoint.rsplit(':', 1)[1]}/data/2.png): "
                        "the post or its file was deleted")]
    assert [r.name for r in result.small] == ["danbooru_3.png", "danbooru_1.png"]  # against 512x512
    assert result.small[1].reason.startswith("30x20: will be upscaled 21x")
    assert steps == [(1, 3, "danbooru #3"), (2, 3, "danbooru #2"), (3, 3, "danbooru #1")]
    assert origin_names(version) == ["danbooru_1.png", "danbooru_1.txt", "danbooru_3.png", "danbooru_3.txt"]
    assert (version.origin / "danbooru_3.txt").read_text(encoding="utf-8") == "hatsune miku, 1girl, long hair, ^_^"
    assert (version.origin / "danbooru_3.png").read_bytes() == server.posts[3].data
    records = booru_sources(version)
    assert sorted(records) == ["danbooru_1.png", "danbooru_3.png"]
    assert records["danbooru_3.png"]["post_url"] == f"{server.endpoint}/posts/3"
    assert records["danbooru_3.png"]["file_url"] == f"{server.endpoint}/data/3.png"
    assert records["danbooru_3.png"]["source"] == "https://example.org/art/3"
    assert records["danbooru_3.png"]["md5"] == server.posts[3].md5 and records["danbooru_3.png"]["rating"] == "general"
    leftovers = [p.name for p in version.dataset.iterdir() if p.is_file() and p.name.startswith(".")]
    assert leftovers == []  # the temporary downloads are gone


def test_preview_skips_what_the_version_has_by_md5_and_by_earlier_import(serve, version):
    server = serve("gelbooru", [StandInPost(i) for i in range(1, 5)])
    add_files(version, [("mine.png", png_bytes(2))])
    client = client_for(server)
    found = preview(version, client, BooruQuery("solo", count=10))
    assert [p.post_id for p in found.posts] == [4, 3, 1]
    assert [(r.name, r.reason) for r in found.left_out] == [("gelbooru #2", "already in the dataset as mine.png")]
    import_posts(version, client, found.posts[:1])
    again = preview(version, client, BooruQuery("solo", count=10))
    assert [p.post_id for p in again.posts] == [3, 1]
    assert {r.reason for r in again.left_out} == {"already in the dataset as mine.png",
                                                  "already in the dataset as gelbooru_4.png"}


def test_posts_without_md5_are_found_by_their_content(serve, version, tmp_path):
    server = serve("safebooru", [StandInPost(9, with_md5=False), StandInPost(8, with_md5=False)])
    picture = tmp_path / "picked.png"
    picture.write_bytes(server.posts[8].data)
    upload(version, [picture])
    found, result = import_by_tags(version, client_for(server), BooruQuery("solo"))
    assert [p.post_id for p in found.posts] == [9, 8] and all(p.md5 is None for p in found.posts)
    assert result.added == ("safebooru_9.png",)
    assert [(r.name, r.reason) for r in result.skipped] == [("safebooru #8", "already in the dataset as picked.png")]
    assert booru_sources(version)["safebooru_9.png"]["file_url"] == f"{server.endpoint}/images/0/9.png"


def test_a_rate_limited_file_is_retried_or_listed_and_the_rest_goes_in(serve, version):
    server = serve("danbooru", [StandInPost(i) for i in range(1, 4)])
    server.rate_limit_once.add("/data/2.png")
    _, result = import_by_tags(version, client_for(server), BooruQuery("solo"))
    assert result.added == ("danbooru_3.png", "danbooru_2.png", "danbooru_1.png") and result.failed == ()
    server.posts[4] = StandInPost(4)
    server.rate_limit_once.add("/data/4.png")
    _, limited = import_by_tags(version, client_for(server, retries=0), BooruQuery("solo"))
    assert limited.added == () and [r.name for r in limited.failed] == ["danbooru #4"]
    assert "HTTP 429" in limited.failed[0].reason
    assert len(list_origin(version)) == 3


def test_a_file_the_upload_checks_refuse_is_listed_with_their_reason(serve, version):
    broken = StandInPost(2, data=b"<html>this is not a picture</html>")
    server = serve("gelbooru", [broken, StandInPost(1)])
    _, result = import_by_tags(version, client_for(server), BooruQuery("solo"))
    assert result.added == ("gelbooru_1.png",)
    assert [(r.name, r.reason) for r in result.failed] == [
        ("gelbooru #2", "not an image (Pillow cannot identify its format)")]
    assert "gelbooru_2.png" not in origin_names(version) and "gelbooru_2.txt" not in origin_names(version)


def test_a_damaged_download_is_caught_by_the_md5(serve, version):
    server = serve("danbooru", [StandInPost(1)])
    found = preview(version, client_for(server), BooruQuery("solo"))
    server.posts[1].data = png_bytes(99)  # the file changed after the search
    result = import_posts(version, client_for(server), found.posts)
    assert result.added == () and "MD5 differs" in result.failed[0].reason
    assert not version.origin.exists() or origin_names(version) == []


def test_stopping_between_images_keeps_what_landed(serve, version):
    server = serve("danbooru", [StandInPost(i) for i in range(1, 5)])
    found = preview(version, client_for(server), BooruQuery("solo"))
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    result = import_posts(version, client_for(server), found.posts, should_stop=should_stop)
    assert result.stopped and result.added == ("danbooru_4.png", "danbooru_3.png")
    assert sorted(booru_sources(version)) == ["danbooru_3.png", "danbooru_4.png"]
    _, rest = import_by_tags(version, client_for(server), BooruQuery("solo"))
    assert rest.added == ("danbooru_2.png", "danbooru_1.png")
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in version.origin.glob("*.png")}
    assert digests == {hashlib.sha256(p.data).hexdigest() for p in server.posts.values()}


def test_a_name_taken_by_another_picture_gets_a_new_stem_and_its_caption_follows(serve, version):
    server = serve("danbooru", [StandInPost(1, tags=("smile",))])
    add_files(version, [("danbooru_1.png", png_bytes(50)), ("danbooru_1.txt", b"mine")])
    _, result = import_by_tags(version, client_for(server), BooruQuery("smile"))
    assert result.added == ("danbooru_1 (2).png",) and result.failed == ()
    assert (version.origin / "danbooru_1 (2).txt").read_text(encoding="utf-8") == "smile"
    assert (version.origin / "danbooru_1.txt").read_text(encoding="utf-8") == "mine"
    assert list(booru_sources(version)) == ["danbooru_1 (2).png"]
