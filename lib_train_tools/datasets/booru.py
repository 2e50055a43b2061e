"""Searching a booru by tags and fetching its files, politely, with the standard library's HTTP.

``BooruClient`` talks to one site (``booru_sites.SITES``: Danbooru, Gelbooru, Safebooru) at its
public address or at ``base_url`` (a mirror, or a stand-in server in tests). Every request names
Train Tools in its ``User-Agent`` and waits until ``min_interval`` seconds (1 s by default) have
passed since the previous one, image downloads included, which keeps well inside the sites'
published rate limits. A ``429 Too Many Requests`` or a 5xx answer is retried after the
``Retry-After`` the server asks for (at most ``max_wait`` seconds, else a growing pause) up to
``retries`` times; what still fails raises ``BooruError`` with the status and what to do.
Credentials travel as query parameters and never appear in an error message (only the address's
host and path do).

``search`` pages through the results (``page_size`` posts a page) until ``count`` posts pass the
filters: the ratings asked for, the minimum short side, an image file type, a file URL (deleted
and restricted posts have none), and the caller's own ``skip`` (already in the version). Each
post left out is listed with its reason.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from .. import __version__
from .booru_sites import RATINGS, BooruPost, Credentials, SiteApi, site_api
from .safe_zip import Refusal

USER_AGENT = f"TrainTools/{__version__} (LoRA training dataset import; Python urllib)"
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp"})
DEFAULT_INTERVAL_S = 1.0
DEFAULT_PAGE_SIZE = 100  # Gelbooru's hard limit per request; Danbooru allows 200
DEFAULT_MAX_PAGES = 20
MAX_COUNT = 1000
_RETRY_STATUSES = (429, 500, 502, 503, 504)
_CHUNK = 1 << 16


class BooruError(RuntimeError):
    """A request failed; ``status`` is the HTTP status (None for a network error)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BooruQuery:
    """What to look for: ``tags`` as typed on the site, at most ``count`` posts that pass the filters.

    ``ratings`` empty means every rating; ``min_side`` is the shortest side in pixels (0: any).
    """

    tags: str
    count: int = 20
    ratings: frozenset[str] = frozenset()
    min_side: int = 0

    def __post_init__(self) -> None:
        if not self.tags.strip():
            raise ValueError("type the tags to search for, as you would on the booru (e.g. 'hatsune_miku solo')")
        if not 1 <= int(self.count) <= MAX_COUNT:
            raise ValueError(f"the number of images must be between 1 and {MAX_COUNT} (it is {self.count})")
        unknown = sorted(set(self.ratings) - set(RATINGS))
        if unknown:
            raise ValueError(f"rating {', '.join(unknown)} is not one of {', '.join(RATINGS)}")
        if int(self.min_side) < 0:
            raise ValueError(f"the minimum side cannot be negative (it is {self.min_side})")


@dataclass(frozen=True)
class SearchResult:
    """The posts that passed (at most the count asked for), those left out and why, pages read.

    ``exhausted``: the booru has no more posts for these tags (else the search stopped at the count
    or after ``max_pages`` pages)."""

    posts: tuple[BooruPost, ...]
    left_out: tuple[Refusal, ...]
    pages: int
    exhausted: bool
    total: int | None = None  # posts matching the tags in all, where the booru says


@dataclass
class BooruClient:
    """One site's API at ``base_url`` (its public address when None), with the request pacing."""

    site: str
    base_url: str | None = None
    credentials: Credentials = field(default_factory=Credentials)
    min_interval: float = DEFAULT_INTERVAL_S
    timeout: float = 30.0
    retries: int = 2
    max_wait: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    _last_request: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.api: SiteApi = site_api(self.site)
        self.base = (self.base_url or self.api.default_base).strip().rstrip("/")
        if urlsplit(self.base).scheme not in ("http", "https"):
            raise ValueError(f"the booru address must start with http:// or https:// (it is {self.base!r})")

    def search(
        self,
        query: BooruQuery,
        skip: Callable[[BooruPost], str | None] | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> SearchResult:
        """Page through the results until ``query.count`` posts pass the filters (see the module's docstring)."""
        kept: list[BooruPost] = []
        left_out: list[Refusal] = []
        seen: set[int] = set()
        pages, total, exhausted = 0, None, False
        while len(kept) < query.count and pages < max_pages:
            page = self.api.first_page + pages
            url = self.api.search_url(self.base, query.tags.strip(), page, page_size, self.credentials)
            payload = self.get_json(url)
            pages += 1
            total = self.api.total(payload) if total is None else total
            try:
                found = self.api.read_page(payload, self.base)
            except (ValueError, TypeError, KeyError) as exc:
                raise BooruError(
                    f"{self.api.title} answered page {page} in a form this version does not read ({exc})") from exc
            for post in found:
                if post.post_id in seen:
                    continue  # new uploads shift the pages: a post can come twice
                seen.add(post.post_id)
                reason = filter_reason(post, query) or (skip(post) if skip else None)
                if reason:
                    left_out.append(Refusal(post.label, reason))
                elif len(kept) < query.count:
                    kept.append(post)
            if len(found) < page_size or (total is not None and pages * page_size >= total):
                exhausted = True
                break
        return SearchResult(tuple(kept), tuple(left_out), pages, exhausted, total)

    def get_json(self, url: str) -> Any:
        body = self._fetch(url, None, 16 * 1024 * 1024)
        if not body.strip():
            return []  # Gelbooru 0.2 sends an empty body when nothing matches
        try:
            return json.loads(body)
        except ValueError as exc:
            raise BooruError(
                f"{_where(url)} did not answer with JSON ({exc}); is the address a {self.api.title}?") from exc

    def download(self, url: str, target: Path, max_bytes: int) -> int:
        """Write the file at ``url`` to ``target`` (at most ``max_bytes``); its size in bytes."""
        self._fetch(url, target, max_bytes)
        return target.stat().st_size

    def _fetch(self, url: str, target: Path | None, max_bytes: int) -> bytes:
        """The body (or, with ``target``, b"" after writing it there), retrying 429 and 5xx answers."""
        for attempt in range(self.retries + 1):
            self._pace()
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return _read_body(response, target, max_bytes, url)
            except urllib.error.HTTPError as exc:
                with exc:
                    detail = _error_detail(exc)
                    if exc.code in _RETRY_STATUSES and attempt < self.retries:
                        self.sleep(self._retry_wait(exc.headers.get("Retry-After"), attempt))
                        continue
                message = _status_message(exc.code, url, detail, self.api.title, self.credentials.given)
                raise BooruError(message, exc.code) from exc
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise BooruError(f"could not reach {_where(url)} ({reason})") from exc
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _pace(self) -> None:
        now = self.clock()
        if self._last_request is not None and self.min_interval > 0:
            wait = self._last_request + self.min_interval - now
            if wait > 0:
                self.sleep(wait)
                now = self.clock()
        self._last_request = now

    def _retry_wait(self, header: str | None, attempt: int) -> float:
        """``Retry-After`` (seconds or an HTTP date) capped at ``max_wait``; else 2, 4, ... seconds."""
        seconds: float | None = None
        if header:
            try:
                seconds = float(header)
            except ValueError:
                try:
                    seconds = parsedate_to_datetime(header).timestamp() - time.time()
                except (TypeError, ValueError):
                    seconds = None
        if seconds is None:
            seconds = 2.0 * (attempt + 1)
        return max(0.0, min(seconds, self.max_wait))


def filter_reason(post: BooruPost, query: BooruQuery) -> str | None:
    """Why ``post`` is left out by the query's filters, or None when it passes."""
    if not post.file_url:
        return "no file to download (a deleted, banned or restricted post)"
    if post.file_ext not in IMAGE_EXTENSIONS:
        return f"not an image ({post.file_ext or 'unknown type'})"
    if query.ratings and post.rating not in query.ratings:
        return f"rating {post.rating}"
    if query.min_side and min(post.width, post.height) < query.min_side:
        return f"{post.width}x{post.height} is under the minimum side of {query.min_side}"
    return None


def _read_body(response: Any, target: Path | None, max_bytes: int, url: str) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise BooruError(f"{_where(url)} is {declared} bytes, over the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    size = 0
    handle = open(target, "wb") if target is not None else None
    try:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise BooruError(f"{_where(url)} is over the {max_bytes}-byte limit")
            if handle is not None:
                handle.write(chunk)
            else:
                chunks.append(chunk)
    finally:
        if handle is not None:
            handle.close()
    if declared and declared.isdigit() and size != int(declared):
        raise BooruError(f"{_where(url)} broke off after {size} of {declared} bytes")
    return b"".join(chunks)


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The server's own message (Danbooru sends ``{"message": ...}``), shortened."""
    try:
        body = exc.read(4096).decode("utf-8", "replace")
    except OSError:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    message = data.get("message") or data.get("reason") if isinstance(data, dict) else None
    return str(message)[:300] if message else ""


def _status_message(status: int, url: str, detail: str, title: str, signed_in: bool) -> str:
    where = _where(url)
    said = f": {detail}" if detail else ""
    if status == 429:
        return f"{title} is rate limiting these requests (HTTP 429 from {where}){said}; wait a minute and try again"
    if status in (401, 403):
        advice = ("check the login/user id and API key, or leave both empty" if signed_in
                  else "the site may want a login/user id and API key (see your account settings there)")
        return f"{title} refused access (HTTP {status} from {where}){said}; {advice}"
    if status == 404:
        return f"not found (HTTP 404 from {where}): the post or its file was deleted"
    if status == 422:
        return (f"{title} refused the search (HTTP 422){said}; anonymous Danbooru searches take at most 2 tags, "
                "a login and API key allow more")
    if status >= 500:
        return f"{title} had a server error (HTTP {status} from {where}){said}; try again later"
    return f"{title} answered HTTP {status} for {where}{said}"


def _where(url: str) -> str:
    """The host and path of ``url``, never its query (which may hold an API key)."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"
