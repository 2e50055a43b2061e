"""An app with the Train Tools API mounted on fake services, and a test client for it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from lib_train_tools.api.mount import mount_api

from .asgi_client import AsgiClient
from .fakes import make_services


@pytest.fixture
def services(tmp_path):
    return make_services(tmp_path)


@pytest.fixture
def client(services):
    app = FastAPI()
    mount_api(app, services)
    return AsgiClient(app)
