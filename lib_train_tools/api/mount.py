"""Assembling the API: one router under ``/train-tools/v1`` guarded by an ``AuthPolicy``.

``mount_api(app, services, policy)`` adds it to any FastAPI app (the WebUI's gradio app, its
API-only app, or the standalone app). Everything is read from ``services`` when a request comes
in, so one router serves for the life of the app it is mounted on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI

from .. import __version__
from . import API_PREFIX
from .auth import AuthPolicy, auth_dependency
from .routes_jobs import jobs_router
from .routes_projects import projects_router
from .routes_results import results_router

if TYPE_CHECKING:
    from ..services import Services


def build_router(services: Services) -> APIRouter:
    """Every route, relative to ``API_PREFIX``."""
    router = APIRouter()

    @router.get("/")
    def about() -> dict:
        return {"name": "Train Tools", "version": __version__, "host": services.host.name, "training": True}

    router.include_router(projects_router(services))
    router.include_router(jobs_router(services))
    router.include_router(results_router(services))
    return router


def mount_api(app: FastAPI, services: Services, policy: AuthPolicy = AuthPolicy()) -> None:
    """Add the Train Tools routes to ``app``; every one of them checks ``policy`` first."""
    app.include_router(build_router(services), prefix=API_PREFIX, dependencies=[Depends(auth_dependency(policy))],
                       tags=["Train Tools"])


def api_paths(app: FastAPI) -> list[str]:
    """The Train Tools paths ``app`` serves (to see whether the API is mounted)."""
    return sorted({getattr(r, "path", "") for r in app.routes if getattr(r, "path", "").startswith(API_PREFIX)})
