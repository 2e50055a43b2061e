"""Which status a library error becomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import HTTPException

from lib_train_tools.api.errors import http_status, translated_errors
from lib_train_tools.projects import StoreError


class Conflict(ValueError):
    def __init__(self):
        super().__init__("a LoRA named 'x' already exists")
        self.existing = Path("/l/x.safetensors")


@pytest.mark.parametrize("error, lookup, status", [
    (StoreError("project 'a' does not exist in /p"), True, 404),
    (StoreError("project 'a' does not exist in /p"), False, 400),
    (StoreError("a project named 'a' already exists"), True, 409),
    (Conflict(), False, 409),
    (ValueError("learning_rate must be positive"), True, 400),
    (FileNotFoundError("gone"), True, 404),
    (RuntimeError("bug"), True, None),
])
def test_http_status(error, lookup, status):
    assert http_status(error, lookup) == status


def test_translated_errors_keeps_the_message_and_lets_bugs_through():
    with pytest.raises(HTTPException) as caught:
        with translated_errors():
            raise StoreError("version 'v' of project 'p' does not exist")
    assert caught.value.status_code == 404 and "does not exist" in caught.value.detail
    with pytest.raises(RuntimeError):
        with translated_errors():
            raise RuntimeError("bug")
