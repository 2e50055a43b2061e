"""WD14 taggers fetched from the Hugging Face hub on first use.

A tagger is the two files ``model.onnx`` and ``selected_tags.csv`` of one of SmilingWolf's WD
repositories, placed in ``<cache_root>/<name>/`` — the folder layout ``taggers.WD14Tagger`` runs
and ``contracts.find_wd14_folders`` lists, so a folder filled by hand works the same way.

``download_tagger`` asks the hub for both files' sizes (a HEAD request per file), downloads them
with ``huggingface_hub.hf_hub_download`` into a hidden staging folder (``<cache_root>/.downloads/``;
an interrupted download is resumed from its ``.incomplete`` file next time), checks each file's size
against the hub's, and only then moves both into the tagger folder and writes a small marker
recording their sizes. A half-finished download therefore never shows up as a tagger. A folder that
already holds both files is used without any network access.

The hub address is ``HF_ENDPOINT`` read when the download starts (as ``huggingface_hub`` reads it,
trailing slash removed), so it can be changed without re-importing ``huggingface_hub``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .taggers import WD14_MODEL_FILE, WD14_TAGS_FILE

ProgressCallback = Callable[[int, int, str], None]

# The tag list first: model.onnx is the file that makes a folder look like a tagger.
TAGGER_FILES = (WD14_TAGS_FILE, WD14_MODEL_FILE)
COMPLETE_MARKER = ".download-complete.json"
STAGING_FOLDER = ".downloads"
_POLL_SECONDS = 0.2
_PROBE_SECONDS = 10
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class KnownTagger:
    repo_id: str
    note: str

    @property
    def name(self) -> str:
        """The repository's name: the tagger's folder under the cache root."""
        return self.repo_id.split("/")[-1]


KNOWN_TAGGERS: tuple[KnownTagger, ...] = (
    KnownTagger("SmilingWolf/wd-swinv2-tagger-v3", "v3, SwinV2 (a good default)"),
    KnownTagger("SmilingWolf/wd-vit-tagger-v3", "v3, ViT"),
    KnownTagger("SmilingWolf/wd-convnext-tagger-v3", "v3, ConvNeXt"),
    KnownTagger("SmilingWolf/wd-vit-large-tagger-v3", "v3, ViT-Large (larger, slower)"),
    KnownTagger("SmilingWolf/wd-eva02-large-tagger-v3", "v3, EVA02-Large (largest, most accurate)"),
    KnownTagger("SmilingWolf/wd-v1-4-convnext-tagger-v2", "v1.4 v2, ConvNeXt"),
    KnownTagger("SmilingWolf/wd-v1-4-vit-tagger-v2", "v1.4 v2, ViT"),
    KnownTagger("SmilingWolf/wd-v1-4-swinv2-tagger-v2", "v1.4 v2, SwinV2"),
)


class TaggerDownloadError(RuntimeError):
    """A tagger could not be downloaded; the message says why and where to put the files by hand."""


def tagger_folder(repo_id: str, cache_root: str | Path) -> Path:
    """``<cache_root>/<repository name>``: where ``download_tagger`` puts ``repo_id``'s files."""
    name = repo_id.rstrip("/").split("/")[-1]
    if not name or name.startswith(".") or "\\" in name:
        raise ValueError(f"{repo_id!r} is not a hub repository id such as 'SmilingWolf/wd-vit-tagger-v3'")
    return Path(cache_root) / name


def is_tagger_complete(folder: Path) -> bool:
    """Both files are present, and where our marker exists their sizes are the ones it recorded."""
    if not all((folder / file).is_file() for file in TAGGER_FILES):
        return False
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return True  # put there by hand
    try:
        sizes = json.loads(marker.read_text(encoding="utf-8"))["sizes"]
        return all((folder / file).stat().st_size == int(sizes[file]) for file in TAGGER_FILES)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT`` as ``huggingface_hub`` reads it, or None for its default (huggingface.co)."""
    value = os.environ.get("HF_ENDPOINT", "").rstrip("/")
    return value or None


def download_tagger(
    repo_id: str,
    cache_root: str | Path,
    progress: ProgressCallback | None = None,
    *,
    revision: str = "main",
) -> Path:
    """The folder with ``repo_id``'s ``model.onnx`` and ``selected_tags.csv``, downloading what is missing.

    ``progress(done_bytes, total_bytes, file_name)`` is called from the caller's thread a few times a
    second while a file downloads (``total_bytes`` is both files together). Raises
    ``TaggerDownloadError`` when the hub cannot be reached or a download breaks off.
    """
    folder = tagger_folder(repo_id, cache_root)
    if is_tagger_complete(folder):
        return folder
    with _folder_lock(folder):  # a second request for the same tagger waits, then finds it complete
        if is_tagger_complete(folder):
            return folder
        return _download(repo_id, folder, Path(cache_root), progress, revision)


def _download(repo_id: str, folder: Path, cache_root: Path, progress: ProgressCallback | None, revision: str) -> Path:
    staging = cache_root / STAGING_FOLDER / folder.name
    endpoint = hub_endpoint()
    sizes = _remote_sizes(repo_id, revision, endpoint, folder)
    total = sum(sizes.values())
    done = 0
    for file in TAGGER_FILES:
        path = _download_one(repo_id, file, revision, endpoint, staging, folder, progress, done, total)
        if path.stat().st_size != sizes[file]:
            actual = path.stat().st_size
            path.unlink(missing_ok=True)
            raise TaggerDownloadError(
                f"{file} of {repo_id} has {actual} bytes but the hub says {sizes[file]}; it was deleted, "
                f"run the download again (or put {WD14_MODEL_FILE} and {WD14_TAGS_FILE} in {folder})"
            )
        done += sizes[file]
    _place(staging, folder, sizes)
    if progress is not None:
        progress(total, total, WD14_MODEL_FILE)
    return folder


def _folder_lock(folder: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(folder.resolve()), threading.Lock())


def _remote_sizes(repo_id: str, revision: str, endpoint: str | None, folder: Path) -> dict[str, int]:
    """Each file's size as the hub reports it (HEAD request), or an error that says what to do."""
    import requests
    from huggingface_hub import constants, get_hf_file_metadata, get_session, hf_hub_url
    from huggingface_hub.utils import HfHubHTTPError

    # One plain request first: huggingface_hub retries network errors with back-off (about 20 s),
    # which is right for a flaky line but makes "offline" slow to say. Any HTTP answer will do.
    try:
        get_session().head(endpoint or constants.ENDPOINT, timeout=_PROBE_SECONDS, allow_redirects=False)
    except (requests.RequestException, OSError) as exc:
        raise _offline_error(exc, folder) from exc
    sizes = {}
    for file in TAGGER_FILES:
        url = hf_hub_url(repo_id, file, revision=revision, endpoint=endpoint)
        try:
            metadata = get_hf_file_metadata(url, endpoint=endpoint)
        except HfHubHTTPError as exc:
            raise TaggerDownloadError(
                f"the hub refused {url} ({_short_reason(exc)}): put {WD14_MODEL_FILE} and {WD14_TAGS_FILE} in {folder}"
            ) from exc
        except (requests.RequestException, OSError) as exc:
            raise _offline_error(exc, folder) from exc
        if metadata.size is None:
            raise TaggerDownloadError(f"the hub gave no size for {url}: put {WD14_MODEL_FILE} and {WD14_TAGS_FILE} in {folder}")
        sizes[file] = metadata.size
    return sizes


def _download_one(
    repo_id: str,
    file: str,
    revision: str,
    endpoint: str | None,
    staging: Path,
    folder: Path,
    progress: ProgressCallback | None,
    done_before: int,
    total: int,
) -> Path:
    """``hf_hub_download`` into ``staging`` on a worker thread while this thread reports progress."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import LocalEntryNotFoundError

    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["path"] = hf_hub_download(
                repo_id, file, revision=revision, local_dir=staging, endpoint=endpoint
            )
        except BaseException as exc:  # handed to the calling thread below
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"download {file}", daemon=True)
    worker.start()
    last = -1
    while worker.is_alive():
        worker.join(_POLL_SECONDS)
        if progress is not None:
            now = done_before + _staged_bytes(staging, file)
            if now != last:
                progress(min(now, total), total, file)
                last = now
    error = outcome.get("error")
    if isinstance(error, LocalEntryNotFoundError):  # its own HEAD request failed
        raise _offline_error(error, folder) from error
    if error is not None:
        raise TaggerDownloadError(
            f"the download of {file} from {repo_id} broke off ({_short_reason(error)}); nothing was placed in "
            f"{folder}. Run it again to resume, or put {WD14_MODEL_FILE} and {WD14_TAGS_FILE} there by hand"
        ) from error
    return Path(outcome["path"])


def _staged_bytes(staging: Path, file: str) -> int:
    """Bytes of ``file`` in the staging folder so far: its partial (``.incomplete``) or finished copy.

    ``hf_hub_download`` names the partial file by a hash (and the file's ETag): the one written last
    is the one growing now, older ones are left from an earlier version of the file.
    """
    sizes = []
    for path in [*staging.rglob("*.incomplete"), staging / file]:
        try:
            stat = path.stat()
        except OSError:
            continue
        sizes.append((stat.st_mtime, stat.st_size))
    return max(sizes)[1] if sizes else 0


def _place(staging: Path, folder: Path, sizes: dict[str, int]) -> None:
    """Move both checked files into ``folder`` (tag list first) and then write the marker."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPLETE_MARKER).unlink(missing_ok=True)
    for file in TAGGER_FILES:
        os.replace(staging / file, folder / file)
    marker = {"sizes": sizes, "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    temporary = folder / (COMPLETE_MARKER + ".tmp")
    temporary.write_text(json.dumps(marker, indent=1), encoding="utf-8")
    os.replace(temporary, folder / COMPLETE_MARKER)
    shutil.rmtree(staging, ignore_errors=True)


def _offline_error(error: BaseException, folder: Path) -> TaggerDownloadError:
    return TaggerDownloadError(
        f"could not reach the hub ({_short_reason(error)}): put {WD14_MODEL_FILE} and {WD14_TAGS_FILE} in {folder}"
    )


def _short_reason(error: BaseException) -> str:
    """The useful part of a requests/urllib3 error (e.g. '[Errno 111] Connection refused')."""
    text = str(error)
    errno = re.search(r"\[Errno [^\]]+\][^'\")]*", text)
    if errno:
        return errno.group(0).strip()
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first_line[:200]
