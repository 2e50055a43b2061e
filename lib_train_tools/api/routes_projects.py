"""Projects, versions, their settings and their dataset (upload, preprocess).

    GET   /projects                                   projects with their versions
    POST  /projects                        {name}     create a project
    GET   /projects/{p}/versions                      versions of a project
    POST  /projects/{p}/versions   {name, copy_from?} create (or duplicate) a version
    GET   /projects/{p}/versions/{v}                  one version: settings and dataset summary
    PATCH /projects/{p}/versions/{v}/settings {...}   merge settings (trainer option names)
    POST  /projects/{p}/versions/{v}/dataset          multipart ``files`` (+ ``replace``): upload
    POST  /projects/{p}/versions/{v}/dataset/preprocess {width, height, mode, repeats, ...}
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, List

from fastapi import APIRouter, Body, File, Form, UploadFile

from ..datasets.origin_files import list_origin
from ..datasets.preprocess import PreprocessOptions, preprocess
from ..datasets.upload import upload
from ..projects import Store, VersionPaths, load_settings, update_settings
from ..train.mask_names import is_mask_file
from .errors import bad_request, required_text, translated_errors
from .serialize import jsonable

if TYPE_CHECKING:
    from ..services import Services


def projects_router(services: Services) -> APIRouter:
    router = APIRouter()
    store: Store = services.store

    @router.get("/projects")
    def list_projects() -> list:
        with translated_errors():
            return [_project(store, p) for p in store.list_projects()]

    @router.post("/projects", status_code=201)
    def create_project(body: dict = Body(...)) -> dict:
        with translated_errors():
            return _project(store, store.create_project(required_text(body, "name")))

    @router.get("/projects/{project}/versions")
    def list_versions(project: str) -> list:
        with translated_errors():
            return [jsonable(v) for v in store.list_versions(project)]

    @router.post("/projects/{project}/versions", status_code=201)
    def create_version(project: str, body: dict = Body(...)) -> dict:
        with translated_errors():
            name, source = required_text(body, "name"), body.get("copy_from")
            if source:
                info = store.duplicate_version(project, str(source), name)
            else:
                info = store.create_version(project, name)
            return version_summary(store.version(project, info.name), services)

    @router.get("/projects/{project}/versions/{version}")
    def get_version(project: str, version: str) -> dict:
        with translated_errors():
            return version_summary(store.version(project, version), services)

    @router.patch("/projects/{project}/versions/{version}/settings")
    def change_settings(project: str, version: str, body: dict = Body(...)) -> dict:
        with translated_errors():
            return update_settings(store.version(project, version), body)

    @router.post("/projects/{project}/versions/{version}/dataset")
    def upload_dataset(project: str, version: str, files: List[UploadFile] = File(...),
                       replace: bool = Form(False)) -> dict:
        with translated_errors():
            paths = store.version(project, version)
            with tempfile.TemporaryDirectory(prefix="train-tools-upload-") as folder:
                result = upload(paths, save_uploads(files, Path(folder)), replace=replace)
            store.touch(paths)
            return jsonable(result)

    @router.post("/projects/{project}/versions/{version}/dataset/preprocess")
    def preprocess_dataset(project: str, version: str, body: dict = Body(default={})) -> dict:
        with translated_errors():
            paths = store.version(project, version)
            options = _preprocess_options(body)
            result = preprocess(paths, options)
            store.touch(paths)
            return jsonable(result)

    return router


def version_summary(version: VersionPaths, services: Services) -> dict:
    """What a client needs to know about a version: its settings and its dataset."""
    processed = version.processed_dir()
    processed_images = 0
    if processed is not None:
        processed_images = sum(1 for p in processed.iterdir()
                               if p.is_file() and p.suffix.lower() != ".txt" and not is_mask_file(p))
    return {
        "project": version.project,
        "name": version.name,
        "id": version.version_id,
        "settings": load_settings(version),
        "dataset": {
            "origin_images": len(list_origin(version)),
            "processed_folder": processed.name if processed is not None else None,
            "processed_images": processed_images,
            "repeats": version.processed_repeats(),
        },
        "busy": services.queue.version_busy(version),
    }


def save_uploads(files: List[UploadFile], folder: Path) -> list[Path]:
    """Write uploaded files under ``folder`` keeping their names (each in its own subfolder)."""
    saved = []
    for index, item in enumerate(files):
        name = Path((item.filename or "").replace("\\", "/")).name or f"upload-{index}"
        target = folder / f"{index:05d}" / name
        target.parent.mkdir()
        with open(target, "wb") as out:
            shutil.copyfileobj(item.file, out)
        saved.append(target)
    return saved


def _project(store: Store, info: Any) -> dict:
    data = jsonable(info)
    data["versions"] = [v.name for v in store.list_versions(info.name)]
    return data



def _preprocess_options(body: dict) -> PreprocessOptions:
    known = set(PreprocessOptions.__dataclass_fields__)
    unknown = sorted(set(body) - known)
    if unknown:
        raise bad_request(f"unknown preprocess options: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values = dict(body)
    if "background" in values:
        values["background"] = tuple(values["background"])
    try:
        return PreprocessOptions(**values)
    except TypeError as exc:
        raise bad_request(f"preprocess options: {exc}") from exc
