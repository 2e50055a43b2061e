"""Handlers of the Dataset tab's "Import from a booru" box: preview a tag search, then import it.

Plain functions (no gradio). Both take the form's values in the order ``booru_panel`` lists them
(site, tags, count, ratings, minimum side, user, API key, address). The preview returns its HTML
table; the import returns its report and then the ``GALLERY`` values (see ``dataset_actions``), so
the new images show at once. Import searches again rather than keeping the preview between
clicks: the form is the one source of what to fetch.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Callable, Sequence

from ..datasets.booru import DEFAULT_INTERVAL_S, BooruClient, BooruQuery, SearchResult
from ..datasets.booru_import import BooruImportResult, booru_caption, import_by_tags, preview
from ..datasets.booru_sites import RATINGS, SITES, Credentials
from .dataset_report import refusal_lines, section, wrap
from .gallery import gallery_values
from .replies import Notice, Reply, ok, warning
from .selection import require_version

ProgressFn = Callable[[int, int, str], None]
SITE_CHOICES = [api.title for api in SITES.values()]
RATING_CHOICES = list(RATINGS)
DEFAULT_RATINGS = ["general", "sensitive"]
DEFAULT_COUNT = 20
SHOWN_TAGS = 12


def site_name(title: str) -> str:
    """The site's key (``danbooru``) for its title in the dropdown (``Danbooru``)."""
    for name, api in SITES.items():
        if title in (api.title, name):
            return name
    raise ValueError(f"choose a booru: {', '.join(SITE_CHOICES)}")


def booru_client(site: str, user: str | None, api_key: str | None, address: str | None,
                 min_interval: float = DEFAULT_INTERVAL_S) -> BooruClient:
    """A client for the chosen site; the address field (empty: the site's own) and credentials are optional."""
    user, api_key = (user or "").strip(), (api_key or "").strip()
    if bool(user) != bool(api_key):
        raise ValueError("give both the login (Gelbooru: user id) and the API key, or neither")
    return BooruClient(site_name(site), base_url=(address or "").strip() or None,
                       credentials=Credentials(user, api_key), min_interval=min_interval)


def booru_query(tags: str | None, count, ratings: Sequence[str] | None, min_side) -> BooruQuery:
    """The search from the form: whole numbers for count and minimum side (empty side: any size)."""
    return BooruQuery((tags or "").strip(), _whole(count, "number of images", DEFAULT_COUNT),
                      frozenset(ratings or ()), _whole(min_side, "minimum side", 0))


def preview_import(services, selection: str, site: str, tags: str, count, ratings: Sequence[str] | None,
                   min_side, user: str | None, api_key: str | None, address: str | None,
                   *, min_interval: float = DEFAULT_INTERVAL_S) -> Reply:
    """What an import would download now: a table of the posts, and what is left out and why."""
    version = require_version(services, selection)
    query = booru_query(tags, count, ratings, min_side)
    client = booru_client(site, user, api_key, address, min_interval)
    found = preview(version, client, query)
    return Reply(_preview_notice(found, query, client), (preview_html(found, client.api.title),))


def run_import(services, selection: str, site: str, tags: str, count, ratings: Sequence[str] | None,
               min_side, user: str | None, api_key: str | None, address: str | None,
               *, progress: ProgressFn | None = None, min_interval: float = DEFAULT_INTERVAL_S) -> Reply:
    """Search, download each post into ``origin/`` with its tags as the caption; report and gallery."""
    version = require_version(services, selection)
    query = booru_query(tags, count, ratings, min_side)
    client = booru_client(site, user, api_key, address, min_interval)
    found, result = import_by_tags(version, client, query, progress=progress)
    if result.added:
        services.store.touch(version)
    return Reply(import_notice(result, found, client.api.title),
                 (import_report(found, result, client.api.title),) + gallery_values(version))


def import_notice(result: BooruImportResult, found: SearchResult, title: str) -> Notice:
    if not found.posts:
        return warning(f"{title} has nothing new for this search ({len(found.left_out)} post(s) left out): "
                       "nothing was imported")
    text = (f"{len(result.added)} image(s) imported from {title} with their tags as captions, "
            f"{len(result.skipped)} already there, {len(result.failed)} failed")
    if result.added:
        text += "; press Preprocess to prepare them for training"
    return warning(text + " (see the list below)") if result.failed or not result.added else ok(text)


def preview_html(found: SearchResult, title: str) -> str:
    """The posts an import would fetch (post link, size, rating, first tags), then what is left out."""
    rows = []
    for post in found.posts:
        tags = booru_caption(post.tags).split(", ")
        shown = ", ".join(tags[:SHOWN_TAGS]) + (f" … (+{len(tags) - SHOWN_TAGS})" if len(tags) > SHOWN_TAGS else "")
        rows.append(
            f'<tr><td><a href="{html.escape(post.post_url, quote=True)}" target="_blank" rel="noopener noreferrer">'
            f"{html.escape(post.label)}</a></td><td>{post.width}×{post.height}</td>"
            f"<td>{html.escape(post.rating)}</td><td>{html.escape(shown)}</td></tr>"
        )
    table = ("<table class=\"tt-booru-preview\"><thead><tr><th>Post</th><th>Size</th><th>Rating</th>"
             f"<th>Caption</th></tr></thead><tbody>{''.join(rows)}</tbody></table>") if rows else ""
    parts = [f"<p>{html.escape(_found_text(found, title))}</p>", table,
             section("Left out", refusal_lines(found.left_out), "info")]
    return wrap(f"Preview: {title}", parts)


def import_report(found: SearchResult, result: BooruImportResult, title: str) -> str:
    parts = [
        f"<p>{html.escape(_found_text(found, title))}</p>",
        section("Imported", list(result.added), "accepted"),
        section("Small (kept; training enlarges them)", refusal_lines(result.small), "info"),
        section("Already there", refusal_lines(result.skipped), "info"),
        section("Failed", refusal_lines(result.failed), "refused"),
        section("Left out by the search", refusal_lines(found.left_out), "info"),
    ]
    return wrap(f"Import from {title}", parts)


def _preview_notice(found: SearchResult, query: BooruQuery, client: BooruClient) -> Notice:
    title = client.api.title
    if not found.posts:
        return warning(f"{title} has nothing to import for {query.tags!r}: {_left_out_summary(found)}")
    text = f"{len(found.posts)} image(s) from {title} would be imported; press Import to fetch them"
    if len(found.posts) == query.count:
        return ok(text)
    why = ("the booru has no more posts for these tags" if found.exhausted
           else f"the search stopped after {found.pages} pages")
    return warning(f"{text} (fewer than the {query.count} asked for: {why}; {len(found.left_out)} left out)")


def _found_text(found: SearchResult, title: str) -> str:
    text = (f"{len(found.posts)} post(s) to import, {len(found.left_out)} left out, "
            f"{found.pages} page(s) of {title} read")
    if found.exhausted:
        return text + "; the booru has no more posts for these tags"
    return text


def _left_out_summary(found: SearchResult) -> str:
    if not found.left_out:
        return "no posts match these tags"
    counts = Counter(_reason_kind(r.reason) for r in found.left_out)
    return ", ".join(f"{n} {kind}" for kind, n in counts.most_common())


def _reason_kind(reason: str) -> str:
    for start, kind in (("already", "already in the version"), ("imported before", "already in the version"),
                        ("rating", "of another rating"), ("not an image", "not images"),
                        ("no file", "without a file")):
        if reason.startswith(start):
            return kind
    return "too small" if "minimum side" in reason else "left out"


def _whole(value, what: str, empty: int) -> int:
    if value in (None, ""):
        return empty
    number = float(value)
    if number != int(number):
        raise ValueError(f"the {what} must be a whole number (it is {value})")
    return int(number)
