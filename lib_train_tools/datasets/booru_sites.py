"""What each booru's JSON post API looks like: the search URL for one page, and posts read from it.

Three APIs, each read into the same ``BooruPost``:

* **Danbooru** (``/posts.json?tags=..&limit=..&page=..``, pages from 1): a JSON list of posts with
  ``id``, ``file_url``, ``md5``, ``rating`` (``g``/``s``/``q``/``e``), ``image_width``,
  ``image_height``, ``file_ext``, ``tag_string`` and the per-category ``tag_string_character``,
  ``_copyright``, ``_artist``, ``_general``, ``_meta``. Credentials are the ``login`` and
  ``api_key`` parameters; anonymous searches take at most two tags.
* **Gelbooru** (``/index.php?page=dapi&s=post&q=index&json=1&tags=..&limit=..&pid=..``, pages from
  0): ``{"@attributes": {"count": ..}, "post": [..]}`` (no ``post`` when nothing matched) with
  ``id``, ``file_url``, ``md5``, ``rating`` (``general``/``sensitive``/``questionable``/``explicit``),
  ``width``, ``height`` and space-separated ``tags``. Credentials: ``api_key`` and ``user_id``.
* **Safebooru** (safebooru.org, the Gelbooru 0.2 API on the same route): a bare JSON list (an
  empty body when nothing matched) with ``directory``, ``image``, ``hash`` (the MD5), ``width``,
  ``height``, ``rating`` and ``tags``; the file is ``<base>/images/<directory>/<image>``.

Ratings become one of ``RATINGS`` (Danbooru's letters, Gelbooru's words, and the older "safe",
which is "general"). Danbooru captions put character, copyright and artist tags before the general
ones and leave out meta tags (``highres``, ``translated``: about the file, not the picture).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

RATINGS = ("general", "sensitive", "questionable", "explicit")
UNKNOWN_RATING = "unknown"
_RATING_WORDS = {
    "g": "general", "general": "general", "safe": "general",
    "s": "sensitive", "sensitive": "sensitive",
    "q": "questionable", "questionable": "questionable",
    "e": "explicit", "explicit": "explicit",
}
_DANBOORU_CAPTION_CATEGORIES = ("character", "copyright", "artist", "general")


@dataclass(frozen=True)
class Credentials:
    """Optional: Danbooru's login and API key, or Gelbooru's user id and API key."""

    user: str = ""
    api_key: str = ""

    @property
    def given(self) -> bool:
        return bool(self.user.strip() and self.api_key.strip())


@dataclass(frozen=True)
class BooruPost:
    """One post, the same whatever booru it came from. ``file_url`` is empty when the booru gives none."""

    site: str
    post_id: int
    file_url: str
    md5: str | None
    rating: str  # one of RATINGS, or UNKNOWN_RATING
    width: int
    height: int
    tags: tuple[str, ...]  # as the booru spells them (underscores), in caption order
    file_ext: str  # lower case, no dot
    post_url: str
    source: str = ""  # where the booru says the picture itself comes from (an artist's page), if given

    @property
    def label(self) -> str:
        return f"{self.site} #{self.post_id}"

    @property
    def file_name(self) -> str:
        """The name the image is stored under in ``origin/``: ``danbooru_123.png``."""
        return f"{self.site}_{self.post_id}.{self.file_ext or 'img'}"


class SiteApi:
    """One booru's post search: ``search_url`` for a page, ``read_page`` for what came back."""

    name = ""
    title = ""
    default_base = ""
    first_page = 0

    def search_url(self, base: str, tags: str, page: int, limit: int, credentials: Credentials) -> str:
        raise NotImplementedError

    def read_page(self, payload: Any, base: str) -> list[BooruPost]:
        raise NotImplementedError

    def total(self, payload: Any) -> int | None:
        """How many posts match in all, where the booru says so."""
        return None


class DanbooruApi(SiteApi):
    name = "danbooru"
    title = "Danbooru"
    default_base = "https://danbooru.donmai.us"
    first_page = 1

    def search_url(self, base: str, tags: str, page: int, limit: int, credentials: Credentials) -> str:
        params: dict[str, str | int] = {"tags": tags, "limit": limit, "page": page}
        if credentials.given:
            params.update(login=credentials.user.strip(), api_key=credentials.api_key.strip())
        return f"{base}/posts.json?{urlencode(params)}"

    def read_page(self, payload: Any, base: str) -> list[BooruPost]:
        if not isinstance(payload, list):
            raise ValueError("Danbooru answered with something other than a list of posts")
        return [self._post(entry, base) for entry in payload if isinstance(entry, dict) and "id" in entry]

    def _post(self, entry: dict, base: str) -> BooruPost:
        by_category = [str(entry.get(f"tag_string_{c}") or "").split() for c in _DANBOORU_CAPTION_CATEGORIES]
        has_categories = any(f"tag_string_{c}" in entry for c in _DANBOORU_CAPTION_CATEGORIES)
        everything = str(entry.get("tag_string") or "").split()
        tags = [t for group in by_category for t in group] if has_categories else everything
        file_url = str(entry.get("file_url") or "")
        return BooruPost(
            site=self.name, post_id=int(entry["id"]),
            file_url=urljoin(base + "/", file_url) if file_url else "",
            md5=_md5(entry.get("md5")), rating=normalise_rating(entry.get("rating")),
            width=_int(entry.get("image_width")), height=_int(entry.get("image_height")),
            tags=tuple(tags), file_ext=_ext(entry.get("file_ext"), file_url),
            post_url=f"{base}/posts/{int(entry['id'])}", source=str(entry.get("source") or ""),
        )


class GelbooruApi(SiteApi):
    name = "gelbooru"
    title = "Gelbooru"
    default_base = "https://gelbooru.com"
    first_page = 0

    def search_url(self, base: str, tags: str, page: int, limit: int, credentials: Credentials) -> str:
        params: dict[str, str | int] = {"page": "dapi", "s": "post", "q": "index", "json": 1, "tags": tags,
                                        "limit": limit, "pid": page}
        if credentials.given:
            params.update(api_key=credentials.api_key.strip(), user_id=credentials.user.strip())
        return f"{base}/index.php?{urlencode(params)}"

    def read_page(self, payload: Any, base: str) -> list[BooruPost]:
        if isinstance(payload, dict):
            entries = payload.get("post") or []
            entries = [entries] if isinstance(entries, dict) else entries
        elif isinstance(payload, list):
            entries = payload
        else:
            raise ValueError(f"{self.title} answered with something other than posts")
        return [self._post(entry, base) for entry in entries if isinstance(entry, dict) and "id" in entry]

    def total(self, payload: Any) -> int | None:
        attributes = payload.get("@attributes") if isinstance(payload, dict) else None
        return _int(attributes.get("count")) if isinstance(attributes, dict) and "count" in attributes else None

    def _file_url(self, entry: dict, base: str) -> str:
        return urljoin(base + "/", str(entry.get("file_url") or "")) if entry.get("file_url") else ""

    def _post(self, entry: dict, base: str) -> BooruPost:
        file_url = self._file_url(entry, base)
        post_id = int(entry["id"])
        return BooruPost(
            site=self.name, post_id=post_id, file_url=file_url,
            md5=_md5(entry.get("md5") or entry.get("hash")), rating=normalise_rating(entry.get("rating")),
            width=_int(entry.get("width")), height=_int(entry.get("height")),
            tags=tuple(str(entry.get("tags") or "").split()),
            file_ext=_ext(None, file_url or str(entry.get("image") or "")),
            post_url=f"{base}/index.php?page=post&s=view&id={post_id}", source=str(entry.get("source") or ""),
        )


class SafebooruApi(GelbooruApi):
    """Gelbooru 0.2: the same search route, a bare list, and the file's URL built from its folder and name."""

    name = "safebooru"
    title = "Safebooru"
    default_base = "https://safebooru.org"

    def search_url(self, base: str, tags: str, page: int, limit: int, credentials: Credentials) -> str:
        params: dict[str, str | int] = {"page": "dapi", "s": "post", "q": "index", "json": 1, "tags": tags,
                                        "limit": limit, "pid": page}
        return f"{base}/index.php?{urlencode(params)}"

    def _file_url(self, entry: dict, base: str) -> str:
        directory, image = entry.get("directory"), entry.get("image")
        if directory in (None, "") or not image:
            return super()._file_url(entry, base)
        return f"{base}/images/{directory}/{image}"


SITES: dict[str, SiteApi] = {api.name: api for api in (DanbooruApi(), GelbooruApi(), SafebooruApi())}


def site_api(name: str) -> SiteApi:
    try:
        return SITES[name]
    except KeyError:
        raise ValueError(f"booru {name!r} is not one of {', '.join(SITES)}") from None


def normalise_rating(value: Any) -> str:
    """A booru's rating (``g``, ``sensitive``, ``safe``, ...) as one of ``RATINGS``, or ``unknown``."""
    return _RATING_WORDS.get(str(value or "").strip().lower(), UNKNOWN_RATING)


def _md5(value: Any) -> str | None:
    text = str(value or "").strip().lower()
    return text if len(text) == 32 and all(c in "0123456789abcdef" for c in text) else None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _ext(value: Any, url: str) -> str:
    if value:
        return str(value).strip().lower().lstrip(".")
    tail = url.split("?", 1)[0].rsplit("/", 1)[-1]
    return tail.rsplit(".", 1)[-1].lower() if "." in tail else ""
