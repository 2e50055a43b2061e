"""Searching a booru: each site's API shape, paging to the count, filters, pacing, rate limits and errors.

Every request goes to a stand-in server on 127.0.0.1 (``booru_standin.py``) that speaks the site's API.
"""

from __future__ import annotations

import pytest

from lib_train_tools.datasets.booru import USER_AGENT, BooruClient, BooruError, BooruQuery
from lib_train_tools.datasets.booru_sites import Credentials, normalise_rating

from .booru_standin import BooruStandIn, StandInPost
from .hub_standin import unused_endpoint


def client_for(server: BooruStandIn, **options) -> BooruClient:
    options.setdefault("min_interval", 0)
    return BooruClient(server.site, base_url=server.endpoint + "/", **options)


def test_danbooru_pages_until_the_count_and_names_train_tools(serve):
    server = serve("danbooru", [StandInPost(i, characters=("hatsune_miku",)) for i in range(1, 6)])
    found = client_for(server).search(BooruQuery("hatsune_miku solo", count=4), page_size=2)
    assert [p.post_id for p in found.posts] == [5, 4, 3, 2]
    assert found.pages == 2 and not found.exhausted
    assert [(q["tags"], q["limit"], q["page"]) for q in server.searches()] == [("hatsune_miku solo", "2", "1"),
                                                                              ("hatsune_miku solo", "2", "2")]
    assert {agent for _, _, agent in server.requests} == {USER_AGENT} and USER_AGENT.startswith("TrainTools/")
    post = found.posts[0]
    assert post.file_url == f"{server.endpoint}/data/5.png" and post.file_name == "danbooru_5.png"
    assert post.post_url == f"{server.endpoint}/posts/5" and post.source == "https://example.org/art/5"
    assert post.md5 == server.posts[5].md5 and (post.width, post.height) == (64, 48)
    # character tags first, meta tags (highres) left out
    assert post.tags == ("hatsune_miku", "1girl", "solo") and post.rating == "general"


def test_a_short_last_page_ends_the_search_below_the_count(serve):
    server = serve("danbooru", [StandInPost(i) for i in range(1, 6)])
    found = client_for(server).search(BooruQuery("solo", count=10), page_size=2)
    assert [p.post_id for p in found.posts] == [5, 4, 3, 2, 1]
    assert found.pages == 3 and found.exhausted


def test_filters_leave_posts_out_with_the_reason_and_paging_goes_on(serve):
    posts = [StandInPost(6, rating="explicit"), StandInPost(5, size=(40, 100)), StandInPost(4),
             StandInPost(3, rating="sensitive", size=(80, 80)), StandInPost(2, rating="questionable"), StandInPost(1)]
    server = serve("danbooru", posts)
    query = BooruQuery("solo", count=2, ratings=frozenset({"general", "sensitive"}), min_side=48)
    found = client_for(server).search(query, page_size=2)
    assert [p.post_id for p in found.posts] == [4, 3]
    assert [(r.name, r.reason) for r in found.left_out] == [
        ("danbooru #6", "rating explicit"), ("danbooru #5", "40x100 is under the minimum side of 48")]
    assert found.pages == 2
    skipped = client_for(server).search(BooruQuery("solo", count=3), lambda p: "mine" if p.post_id == 5 else None,
                                        page_size=10)
    assert [p.post_id for p in skipped.posts] == [6, 4, 3] and [r.reason for r in skipped.left_out] == ["mine"]


def test_gelbooru_reads_the_attributes_count_words_and_credentials(serve):
    server = serve("gelbooru", [StandInPost(i, rating=r) for i, r in [(1, "general"), (2, "sensitive"),
                                                                         (3, "questionable"), (4, "explicit")]])
    server.required_key = ("123", "secret-key")
    client = client_for(server, credentials=Credentials("123", "secret-key"))
    found = client.search(BooruQuery("solo 1girl", count=10), page_size=2)
    assert [(p.post_id, p.rating) for p in found.posts] == [(4, "explicit"), (3, "questionable"), (2, "sensitive"),
                                                            (1, "general")]
    assert found.pages == 2 and found.exhausted and found.total == 4  # the count says page 2 was the last
    assert [q["pid"] for q in server.searches()] == ["0", "1"]
    first = server.searches()[0]
    assert [first[k] for k in ("page", "s", "q", "json", "user_id")] == ["dapi", "post", "index", "1", "123"]
    assert found.posts[0].tags == ("1girl", "solo") and found.posts[0].file_url.endswith("/data/4.png")
    with pytest.raises(BooruError, match="refused access \\(HTTP 401") as refused:
        client_for(server, credentials=Credentials("123", "wrong-key")).search(BooruQuery("solo"))
    assert "wrong-key" not in str(refused.value) and refused.value.status == 401


def test_safebooru_builds_the_file_url_and_reads_an_empty_answer(serve):
    server = serve("safebooru", [StandInPost(150, rating="general"), StandInPost(7, rating="questionable")])
    found = client_for(server).search(BooruQuery("solo"))
    assert [(p.post_id, p.rating) for p in found.posts] == [(150, "general"), (7, "questionable")]
    assert found.posts[0].file_url == f"{server.endpoint}/images/1/150.png"
    assert found.posts[0].md5 == server.posts[150].md5 and found.posts[0].post_url.endswith("page=post&s=view&id=150")
    nothing = client_for(server).search(BooruQuery("no_such_tag"))
    assert nothing.posts == () and nothing.exhausted and nothing.pages == 1


def test_a_429_is_retried_after_the_servers_wait_and_then_reported(serve):
    server = serve("danbooru", [StandInPost(1)])
    waits: list[float] = []
    server.rate_limit_once.add("search")
    found = client_for(server, sleep=waits.append).search(BooruQuery("solo"))
    assert [p.post_id for p in found.posts] == [1] and waits == [0.0] and len(server.searches()) == 2
    server.rate_limit_once.add("search")
    with pytest.raises(BooruError, match="rate limiting these requests \\(HTTP 429") as limited:
        client_for(server, retries=0).search(BooruQuery("solo"))
    assert limited.value.status == 429 and "wait a minute" in str(limited.value)


def test_anonymous_danbooru_searches_of_three_tags_say_why(serve):
    server = serve("danbooru", [StandInPost(1)])
    with pytest.raises(BooruError, match="more than 2 tags at a time.*at most 2 tags") as refused:
        client_for(server).search(BooruQuery("a b c"))
    assert refused.value.status == 422
    found = client_for(server, credentials=Credentials("me", "key")).search(BooruQuery("1girl solo solo"))
    assert [p.post_id for p in found.posts] == [1]
    assert (server.searches()[-1]["login"], server.searches()[-1]["api_key"]) == ("me", "key")


def test_requests_are_paced_by_the_minimum_interval(serve):
    server = serve("danbooru", [StandInPost(i) for i in range(1, 4)])
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    client = BooruClient("danbooru", base_url=server.endpoint, min_interval=1.5, sleep=sleep, clock=lambda: now[0])
    client.search(BooruQuery("solo", count=3), page_size=1)
    assert waits == [1.5, 1.5] and len(server.searches()) == 3


def test_network_errors_and_wrong_answers_are_clear():
    with pytest.raises(BooruError, match="could not reach 127.0.0.1") as offline:
        BooruClient("gelbooru", base_url=unused_endpoint(), min_interval=0).search(BooruQuery("solo"))
    assert offline.value.status is None
    with pytest.raises(ValueError, match="not one of danbooru, gelbooru, safebooru"):
        BooruClient("e621")
    with pytest.raises(ValueError, match="must start with http"):
        BooruClient("danbooru", base_url="ftp://example.org")


def test_query_checks_and_rating_words():
    with pytest.raises(ValueError, match="type the tags"):
        BooruQuery("  ")
    with pytest.raises(ValueError, match="between 1 and 1000"):
        BooruQuery("solo", count=0)
    with pytest.raises(ValueError, match="rating safe is not one of"):
        BooruQuery("solo", ratings=frozenset({"safe"}))
    assert [normalise_rating(r) for r in ("g", "s", "q", "e", "Safe", "sensitive", "", None)] == [
        "general", "sensitive", "questionable", "explicit", "general", "sensitive", "unknown", "unknown"]


def test_a_refusal_without_credentials_suggests_giving_them(serve):
    server = serve("gelbooru", [StandInPost(1)])
    server.required_key = ("1", "k")
    with pytest.raises(BooruError, match="refused access \\(HTTP 401.*may want a login/user id and API key"):
        client_for(server).search(BooruQuery("solo"))
