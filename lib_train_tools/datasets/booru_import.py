"""Importing a booru's images for a tag search into a version's ``dataset/origin/``.

``preview`` runs the search (``booru.BooruClient.search``) and leaves out, besides what the
query's filters drop, every post the version already has: an image in ``origin/`` whose MD5 is the
post's MD5 (boorus hash the file as uploaded, so an unchanged download matches), or a post this
version imported before whose file is still there. ``import_posts`` then fetches each post to a
hidden temporary file in ``dataset/``, checks the MD5 where the booru gave one, skips a file whose
SHA-256 is already in ``origin/`` (posts without an MD5 are found this way), and hands it with its
caption to ``upload.add_files``, so it passes exactly the checks and naming rules of an upload
(``danbooru_123.jpg`` and ``danbooru_123.txt``). The caption is the post's tags with underscores
as spaces, except in tags of under four characters (kaomoji such as ``^_^``), as the WD14 tagger
writes them.

Where each image came from (site, post and file URLs, the post's own source, MD5, rating) is kept
in ``dataset/booru_sources.json``, rewritten atomically after every image. Each image is its own
step: a failure (network, rate limit, a deleted post, a file the checks refuse) is listed with its
reason and the next image goes on; stopping or a crash between images loses nothing already landed,
and importing again skips what is there.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..atomic import atomic_write_json, read_json, temporary_sibling
from ..projects.layout import VersionPaths
from .booru import BooruClient, BooruError, BooruQuery, SearchResult
from .booru_sites import BooruPost
from .captions import format_tags
from .image_checks import ImageLimits
from .origin_files import list_origin
from .safe_zip import Refusal
from .upload import add_files

ProgressFn = Callable[[int, int, str], None]
KEEP_UNDERSCORES_BELOW = 4  # tags this short keep their underscores (kaomoji), as in taggers.py
RECORDS_FORMAT = 1


@dataclass(frozen=True)
class BooruImportResult:
    """Stored image names, posts skipped (already there) and failed (with the reason), small ones flagged."""

    added: tuple[str, ...]
    skipped: tuple[Refusal, ...]
    failed: tuple[Refusal, ...]
    small: tuple[Refusal, ...] = ()
    stopped: bool = False  # ``should_stop`` ended it before every post was tried


def booru_caption(tags: Sequence[str]) -> str:
    """The caption for a post's tags: comma-separated, underscores as spaces (not in short kaomoji)."""
    return format_tags([t if len(t) < KEEP_UNDERSCORES_BELOW else t.replace("_", " ") for t in tags])


def booru_sources(version: VersionPaths) -> dict[str, dict]:
    """Where each imported image came from, by its file name in ``origin/``."""
    data = read_json(version.booru_sources_file, {})
    images = data.get("images") if isinstance(data, dict) else None
    return dict(images) if isinstance(images, dict) else {}


def preview(version: VersionPaths, client: BooruClient, query: BooruQuery, **search_options: int) -> SearchResult:
    """The posts an import would download: the search's, less those the version already has."""
    known = _KnownFiles.of(version)
    return client.search(query, known.reason, **search_options)


def import_by_tags(
    version: VersionPaths,
    client: BooruClient,
    query: BooruQuery,
    *,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    image_limits: ImageLimits = ImageLimits(),
    **search_options: int,
) -> tuple[SearchResult, BooruImportResult]:
    """Search (as ``preview`` does), then import what it found."""
    found = preview(version, client, query, **search_options)
    limits = ImageLimits(max(image_limits.min_side, query.min_side), image_limits.max_pixels,
                         image_limits.max_file_bytes)
    return found, import_posts(version, client, found.posts, progress=progress, should_stop=should_stop,
                               image_limits=limits)


def import_posts(
    version: VersionPaths,
    client: BooruClient,
    posts: Sequence[BooruPost],
    *,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    image_limits: ImageLimits = ImageLimits(),
) -> BooruImportResult:
    """Download and land each post in turn (see the module's docstring); ``progress(done, total, label)``."""
    known = _KnownFiles.of(version)
    added: list[str] = []
    skipped: list[Refusal] = []
    failed: list[Refusal] = []
    small: list[Refusal] = []
    stopped = False
    for done, post in enumerate(posts, start=1):
        if should_stop is not None and should_stop():
            stopped = True
            break
        try:
            data = _fetch(version, client, post, image_limits.max_file_bytes)
        except BooruError as exc:
            failed.append(Refusal(post.label, str(exc)))
        else:
            _land(version, post, data, known, image_limits, added, skipped, failed, small)
        if progress is not None:
            progress(done, len(posts), post.label)
    return BooruImportResult(tuple(added), tuple(skipped), tuple(failed), tuple(small), stopped)


def _fetch(version: VersionPaths, client: BooruClient, post: BooruPost, max_bytes: int) -> bytes:
    """The post's file, downloaded under a temporary name in ``dataset/`` (removed afterwards)."""
    version.dataset.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(version.dataset / post.file_name)
    try:
        client.download(post.file_url, temporary, max_bytes)
        data = temporary.read_bytes()
    except OSError as exc:
        raise BooruError(f"could not save the download ({exc})") from exc
    finally:
        temporary.unlink(missing_ok=True)
    if post.md5 and _md5(data) != post.md5:
        raise BooruError(f"the downloaded file's MD5 differs from the booru's ({len(data)} bytes): a damaged download")
    return data


def _land(version: VersionPaths, post: BooruPost, data: bytes, known: "_KnownFiles", limits: ImageLimits,
          added: list[str], skipped: list[Refusal], failed: list[Refusal], small: list[Refusal]) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest in known.sha256:
        skipped.append(Refusal(post.label, f"already in the dataset as {known.sha256[digest]}"))
        return
    result = add_files(version, [(post.file_name, data)], image_limits=limits)
    failed += [Refusal(post.label, r.reason) for r in result.refused]
    skipped += [Refusal(post.label, r.reason) for r in result.skipped]
    if not result.added:
        return
    stored = result.added[0]
    added.append(stored)
    small += list(result.small)
    known.sha256[digest] = stored
    _record(version, stored, post)
    caption = booru_caption(post.tags)
    if caption:  # after its image, so a refused image leaves no caption behind
        written = add_files(version, [(f"{Path(stored).stem}.txt", caption.encode("utf-8"))])
        failed += [Refusal(post.label, f"{stored} went in, its caption did not: {r.reason}") for r in written.refused]


def _record(version: VersionPaths, stored: str, post: BooruPost) -> None:
    with version.lock():
        images = booru_sources(version)
        images[stored] = {
            "site": post.site, "post_id": post.post_id, "post_url": post.post_url, "file_url": post.file_url,
            "source": post.source, "md5": post.md5, "rating": post.rating, "width": post.width,
            "height": post.height, "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write_json(version.booru_sources_file, {"format": RECORDS_FORMAT, "images": images})


@dataclass
class _KnownFiles:
    """What ``origin/`` holds: file names by MD5 and by SHA-256, and the booru posts imported before."""

    md5: dict[str, str]
    sha256: dict[str, str]
    posts: dict[tuple[str, int], str]

    @classmethod
    def of(cls, version: VersionPaths) -> "_KnownFiles":
        md5: dict[str, str] = {}
        sha256: dict[str, str] = {}
        present = set()
        for item in list_origin(version):
            present.add(item.image.name)
            try:
                data = item.image.read_bytes()
            except OSError:
                continue
            md5.setdefault(_md5(data), item.image.name)
            sha256.setdefault(hashlib.sha256(data).hexdigest(), item.image.name)
        posts = {}
        for name, record in booru_sources(version).items():
            if name in present and isinstance(record, dict):
                try:
                    posts[(str(record.get("site")), int(record.get("post_id", -1)))] = name
                except (TypeError, ValueError):
                    continue
        return cls(md5, sha256, posts)

    def reason(self, post: BooruPost) -> str | None:
        if post.md5 and post.md5 in self.md5:
            return f"already in the dataset as {self.md5[post.md5]}"
        name = self.posts.get((post.site, post.post_id))
        return f"imported before as {name}" if name else None


def _md5(data: bytes) -> str:
    """The MD5 boorus name files by (a file identity here, not a security check)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
