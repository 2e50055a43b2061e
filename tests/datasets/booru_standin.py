"""A stand-in booru on 127.0.0.1 speaking Danbooru's, Gelbooru's or Safebooru's post API, for import tests.

``BooruStandIn(site, posts)`` answers the search route of ``site`` (``/posts.json`` for Danbooru,
``/index.php?page=dapi&s=post&q=index&json=1`` for the other two) with the posts whose tags hold
every searched tag, newest (highest id) first, ``limit`` a page, in that site's JSON shape, and
serves each post's generated PNG (``/data/<id>.png``; Safebooru's ``/images/<dir>/<name>``).
A post with ``deleted=True`` is listed but its file answers 404. ``rate_limit_once`` names paths
(``"search"`` for the search route) whose first request gets ``429`` with ``Retry-After: 0``.
``required_key`` makes the search demand those credentials (401 otherwise); Danbooru refuses
anonymous searches of more than two tags with 422, as the real one does.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

_LETTERS = {"general": "g", "sensitive": "s", "questionable": "q", "explicit": "e"}

from .local_server import LocalServer


@dataclass
class StandInPost:
    post_id: int
    tags: tuple[str, ...] = ("1girl", "solo")
    rating: str = "general"
    size: tuple[int, int] = (64, 48)
    characters: tuple[str, ...] = ()
    deleted: bool = False  # listed, but the file is gone (404)
    with_md5: bool = True
    data: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not self.data:
            self.data = png_bytes(self.post_id, self.size)

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()


class BooruStandIn(LocalServer):
    def __init__(self, site: str, posts: list[StandInPost]):
        self.site = site
        self.posts = {p.post_id: p for p in posts}
        self.rate_limit_once: set[str] = set()
        self.required_key: tuple[str, str] | None = None  # (user, api key)
        self.requests: list[tuple[str, dict[str, str], str]] = []  # (path, query, User-Agent)
        super().__init__(self._handler())

    def searches(self) -> list[dict[str, str]]:
        return [query for path, query, _ in self.requests if path in ("/posts.json", "/index.php")]

    # ----- answers -----
    def _search(self, query: dict[str, str]) -> tuple[int, object]:
        wanted = query.get("tags", "").split()
        if self.required_key is not None:
            user, key = self.required_key
            given = (query.get("login"), query.get("api_key")) if self.site == "danbooru" else (
                query.get("user_id"), query.get("api_key"))
            if given != (user, key):
                return 401, {"success": False, "message": "SessionLoader::AuthenticationFailure"}
        if self.site == "danbooru" and len(wanted) > 2 and "api_key" not in query:
            return 422, {"success": False, "message": "You cannot search for more than 2 tags at a time."}
        limit = int(query.get("limit", "20"))
        page = int(query["page"]) - 1 if self.site == "danbooru" else int(query.get("pid", "0"))
        matching = [p for _, p in sorted(self.posts.items(), reverse=True) if set(wanted) <= set(p.tags + p.characters)]
        chosen = matching[page * limit:(page + 1) * limit]
        if self.site == "danbooru":
            return 200, [self._danbooru(p) for p in chosen]
        if self.site == "gelbooru":
            body: dict[str, object] = {"@attributes": {"limit": limit, "offset": page * limit, "count": len(matching)}}
            if chosen:
                body["post"] = [self._gelbooru(p) for p in chosen]
            return 200, body
        return 200, [self._safebooru(p) for p in chosen] if chosen else ""

    def _file_url(self, post: StandInPost) -> str:
        return f"{self.endpoint}/data/{post.post_id}.png"

    def _danbooru(self, post: StandInPost) -> dict:
        return {
            "id": post.post_id, "file_url": self._file_url(post), "large_file_url": self._file_url(post),
            "md5": post.md5 if post.with_md5 else None, "rating": _LETTERS[post.rating],
            "image_width": post.size[0], "image_height": post.size[1], "file_ext": "png",
            "tag_string": " ".join(sorted(post.tags + post.characters + ("highres",))),
            "tag_string_general": " ".join(post.tags), "tag_string_character": " ".join(post.characters),
            "tag_string_copyright": "", "tag_string_artist": "", "tag_string_meta": "highres",
            "source": f"https://example.org/art/{post.post_id}",
        }

    def _gelbooru(self, post: StandInPost) -> dict:
        return {
            "id": post.post_id, "file_url": self._file_url(post), "md5": post.md5 if post.with_md5 else "",
            "rating": post.rating, "width": post.size[0], "height": post.size[1],
            "tags": " ".join(sorted(post.tags + post.characters)), "source": "",
            "directory": "ab/cd", "image": f"{post.md5}.png",
        }

    def _safebooru(self, post: StandInPost) -> dict:
        return {
            "id": post.post_id, "directory": str(post.post_id // 100), "image": f"{post.post_id}.png",
            "hash": post.md5 if post.with_md5 else "", "width": post.size[0], "height": post.size[1],
            "rating": "safe" if post.rating == "general" else post.rating,
            "tags": " ".join(sorted(post.tags + post.characters)),
        }

    def _file(self, path: str) -> StandInPost | None:
        name = path.rsplit("/", 1)[-1]
        stem = name[: -len(".png")] if name.endswith(".png") else ""
        post = self.posts.get(int(stem)) if stem.isdigit() else None
        return None if post is None or post.deleted else post

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        booru = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                booru.requests.append((parts.path, query, self.headers.get("User-Agent", "")))
                search = parts.path == ("/posts.json" if booru.site == "danbooru" else "/index.php")
                key = "search" if search else parts.path
                if key in booru.rate_limit_once:
                    booru.rate_limit_once.discard(key)
                    self._send(429, b'{"success": false, "message": "too many requests"}', {"Retry-After": "0"})
                elif search:
                    status, body = booru._search(query)
                    self._send(status, b"" if body == "" else json.dumps(body).encode("utf-8"))
                elif parts.path.startswith(("/data/", "/images/")):
                    post = booru._file(parts.path)
                    if post is None:
                        self._send(404, b"not found")
                    else:
                        self._send(200, post.data, {"Content-Type": "image/png"})
                else:
                    self._send(404, b"no such route")

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def png_bytes(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A distinct PNG per seed (blocky random colours), e.g. to put a post's picture in a version first."""
    rng = np.random.default_rng(1000 + seed)
    blocks = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blocks, "RGB").resize(size, Image.Resampling.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()
