"""Typing into the Train form while it reloads: what the user typed is what stays and is saved.

A reload of the form (opening the Train tab, choosing a version) that answers after the user
started typing used to overwrite the field with the old value, and leaving the field then saved
that old value ("max_train_epochs = unset saved" where 5 was typed). The app here holds each
reload's answer back until the test lets it go (``held_view_app.py``), so the race happens every
time. Also: emptying a number field saves "unset" (gradio 4 fires no input event for it).
"""

from __future__ import annotations

import pytest

from lib_train_tools.projects import Store, load_settings

from .app_server import REPO_ROOT, AppServer
from .browser import artifacts, chromium_page, expect_text, expect_value, open_tab, screenshot, text_input

HELD_VIEW_APP = REPO_ROOT / "tests" / "ui" / "held_view_app.py"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("held")
    store = Store(root / "output")
    store.create_project("テスト")
    store.create_version("テスト", "v1")
    hold = root / "hold-view"
    server = AppServer.start(root / "output", root / "checkpoints", root / "app.log",
                             launcher=[str(HELD_VIEW_APP), str(hold)])
    yield server, store, hold
    server.stop()


def saved(store: Store, name: str):
    return load_settings(store.version("テスト", "v1")).get(name)


def test_a_value_typed_while_the_form_reloads_is_kept_and_saved(app):
    server, store, hold = app
    folder = artifacts("form-reload")
    with chromium_page() as page:
        page.goto(server.url)
        expect_text(page, "tt_architecture", "view answered 1")  # the page-load reload is done
        hold.touch()
        open_tab(page, "Train")  # asks for a reload, held back
        epochs = text_input(page, "tt_opt_max_train_epochs")
        epochs.fill("5")  # typed while the reload is on its way, not left yet
        hold.unlink()
        expect_text(page, "tt_architecture", "view answered 2")  # the old answer has arrived
        expect_value(page, "tt_opt_max_train_epochs", "5")
        epochs.press("Tab")
        expect_text(page, "tt_status", "max_train_epochs = 5 saved")
        assert saved(store, "max_train_epochs") == 5
        screenshot(page, folder, "typed-during-reload")

        epochs.fill("")
        epochs.press("Tab")
        expect_text(page, "tt_status", "max_train_epochs = unset saved")
        assert saved(store, "max_train_epochs") is None
        epochs.fill("7")
        epochs.press("Enter")
        expect_text(page, "tt_status", "max_train_epochs = 7 saved")
        page.reload()
        open_tab(page, "Train")
        expect_value(page, "tt_opt_max_train_epochs", "7")
