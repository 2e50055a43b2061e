"""Base models, training runs and publishing.

    GET  /checkpoints                              the host's base checkpoints (title, path)
    GET  /projects/{p}/versions/{v}/runs           the version's runs with their LoRA files
    POST /publish  {project, version, run, checkpoint?, name?, activation_text?,
                    preferred_weight?, notes?, overwrite?}
                                                   copy a run's file into the host's LoRA folder
    POST /previews {project, version, run, prompt, checkpoints?, weights?, seeds?, negative_prompt?,
                    sampler?, steps?, cfg_scale?, width?, height?, clip_skip?}
                                                   the preview grid (epochs x weights) drawn by the
                                                   host's renderer (inside the WebUI: its txt2img)

Publish takes a file of the run by its file name (default: the run's final file); the name
defaults to the first free ``<project>-<version>``, the activation text to the version's
activation tag, the card picture to the run's newest sample image. A taken name is 409 unless
``overwrite`` is true.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body

from ..projects import VersionPaths, load_settings
from .errors import bad_request, not_found, required_text, translated_errors
from .serialize import jsonable

if TYPE_CHECKING:
    from ..services import Services


def results_router(services: Services) -> APIRouter:
    router = APIRouter()

    @router.get("/checkpoints")
    def checkpoints() -> list:
        return [{"title": c.title, "path": str(c.path)} for c in services.host.checkpoints()]

    @router.get("/projects/{project}/versions/{version}/runs")
    def runs(project: str, version: str) -> list:
        from ..results.runs import list_runs

        with translated_errors():
            return [jsonable(run) for run in list_runs(services.store.version(project, version))]

    @router.post("/publish", status_code=201)
    def publish(body: dict = Body(...)) -> dict:
        from ..results.publish import default_notes, default_publish_name, free_name
        from ..results.publish import publish as publish_file

        with translated_errors():
            version = services.store.version(required_text(body, "project"), required_text(body, "version"))
            run = _run(version, required_text(body, "run"))
            checkpoint, info = _checkpoint(run, body.get("checkpoint"))
        lora_dir = Path(services.host.lora_dir())
        with translated_errors(lookup=False):
            name = body.get("name") or free_name(lora_dir, default_publish_name(version.project, version.name))
            activation = body.get("activation_text")
            if activation is None:
                activation = load_settings(version).get("activation_tag") or ""
            path = publish_file(checkpoint, lora_dir, name, activation_text=activation,
                                preferred_weight=float(body.get("preferred_weight", 1.0)),
                                notes=str(body.get("notes") or default_notes(
                                    version.project, version.name, run.name, info.epoch, info.step)),
                                preview_image=run.samples[-1] if run.samples else None,
                                overwrite=bool(body.get("overwrite", False)))
        services.host.lora_published(path)
        return {"name": path.stem, "path": str(path), "checkpoint": str(checkpoint)}

    @router.post("/previews", status_code=201)
    def previews(body: dict = Body(...)) -> dict:
        from ..results.preview import PreviewRequest, render_preview

        with translated_errors():
            version = services.store.version(required_text(body, "project"), required_text(body, "version"))
            run = _run(version, required_text(body, "run"))
            files = [_checkpoint(run, name)[0] for name in body.get("checkpoints") or []]
        unknown = sorted(set(body) - PREVIEW_FIELDS - {"project", "version", "run", "checkpoints"})
        if unknown:
            raise bad_request(f"unknown preview settings: {', '.join(unknown)}")
        renderer = services.host.preview_renderer()
        try:
            with translated_errors(lookup=False):
                request = PreviewRequest(checkpoints=files, **{k: body[k] for k in PREVIEW_FIELDS if k in body})
                result = render_preview(Path(run.dir), request, renderer)
        finally:
            renderer.close()  # the WebUI's renderer removes its staged LoRA copies
        return {"grid": str(result.grid_path), "folder": str(result.folder), "cells": jsonable(result.cells)}

    return router


PREVIEW_FIELDS = {"prompt", "negative_prompt", "sampler", "steps", "cfg_scale", "seeds", "width", "height",
                  "weights", "clip_skip"}


def _run(version: VersionPaths, name: str) -> Any:
    from ..results.runs import read_run

    folder = version.trains / name
    if Path(name).name != name or name.startswith(".") or not folder.is_dir():
        raise not_found(f"run {name!r} of {version.project}/{version.name}")
    return read_run(folder)


def _checkpoint(run: Any, file_name: Any) -> tuple[Path, Any]:
    """The chosen file of the run (default: its final file) and its CheckpointInfo."""
    if file_name is None:
        if run.final is None:
            raise bad_request(f"run {run.name} has no final file yet: name one of its epoch files as 'checkpoint'")
        return Path(run.final.path), run.final
    by_name = {Path(c.path).name: c for c in run.all_checkpoints}
    if file_name not in by_name:
        raise not_found(f"file {file_name!r} in run {run.name} (files: {', '.join(sorted(by_name)) or 'none'})")
    return Path(by_name[file_name].path), by_name[file_name]
