"""The result of an action shows where the person is looking, and the tab never pretends.

A real browser against the standalone app, on a version with no images: Begin train pressed far
down the page shows why it refused next to the button, inside the viewport; a caption uploaded on
its own adds no image and says so, and preprocessing nothing is a warning (the banner keeps the
earlier messages under it); a field whose entry is
refused stays marked, the check lists it and Begin train is refused until it is fixed.
"""

from __future__ import annotations

import pytest

from lib_train_tools.projects import Store

from .app_server import AppServer
from .browser import artifacts, chromium_page, drop_files, expect_text, open_tab, playwright_api, screenshot, text_input

TIMEOUT_MS = 60_000
ARTIFACTS = artifacts("feedback")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("feedback")
    store = Store(root / "output")
    store.create_project("テスト")
    store.create_version("テスト", "v1")
    server = AppServer.start(root / "output", root / "checkpoints", root / "app.log")
    yield server, root
    server.stop()


@pytest.fixture(scope="module")
def page(app):
    server, _ = app
    with chromium_page() as page:
        page.goto(server.url)
        expect_text(page, "tt_gallery_note", "No images yet")
        yield page


def in_view(page, elem_id: str) -> None:
    playwright_api.expect(page.locator(f"#{elem_id}").first).to_be_in_viewport(timeout=TIMEOUT_MS)


def test_begin_train_far_down_the_page_shows_its_refusal_next_to_the_button(page):
    open_tab(page, "Train")
    page.locator("#tt_begin_train").scroll_into_view_if_needed()
    page.click("#tt_begin_train")
    expect_text(page, "tt_train_feedback", "no training images|preprocess|base model")
    in_view(page, "tt_train_feedback")
    playwright_api.expect(page.locator("#tt_status").first).not_to_be_in_viewport()  # the banner is far above
    screenshot(page, ARTIFACTS, "begin-refused-in-view")


def test_a_caption_alone_and_an_empty_preprocess_are_warnings(page, app):
    _, root = app
    lonely = root / "lonely.txt"
    lonely.write_text("a caption without its picture", encoding="utf-8")
    open_tab(page, "Dataset")
    drop_files(page, "#tt_upload_zone", [lonely])
    expect_text(page, "tt_upload_feedback", r"no images were added .*1 caption\(s\) wait for an image")
    playwright_api.expect(page.locator("#tt_upload_feedback .tt-warning").first).to_be_visible()
    page.click("#tt_preprocess")
    expect_text(page, "tt_preprocess_feedback", "no training images")
    playwright_api.expect(page.locator("#tt_preprocess_feedback .tt-warning").first).to_be_visible()
    in_view(page, "tt_preprocess_feedback")
    # the banner shows the newest message; the earlier one is kept under it
    expect_text(page, "tt_status", "no training images")
    expect_text(page, "tt_status_history", r"Messages \(\d+\)")
    expect_text(page, "tt_status_history", "no images were added")
    screenshot(page, ARTIFACTS, "empty-preprocess")


def test_a_refused_entry_stays_marked_and_blocks_training_until_fixed(page):
    open_tab(page, "Train")
    epochs = text_input(page, "tt_opt_max_train_epochs")
    epochs.fill("0")
    epochs.press("Tab")
    expect_text(page, "tt_status", "max_train_epochs was not saved: max_train_epochs is 0, below the minimum 1")
    field = page.locator("#tt_opt_max_train_epochs").first
    playwright_api.expect(field).to_contain_text("NOT SAVED: max_train_epochs is 0", timeout=TIMEOUT_MS)
    expect_text(page, "tt_check", "max_train_epochs: the last entry was refused")
    page.locator("#tt_begin_train").scroll_into_view_if_needed()
    page.click("#tt_begin_train")
    expect_text(page, "tt_train_feedback", "fix these fields first -- max_train_epochs")
    screenshot(page, ARTIFACTS, "refused-entry")

    epochs.fill("3")
    epochs.press("Tab")
    expect_text(page, "tt_status", "max_train_epochs = 3 saved")
    playwright_api.expect(field).not_to_contain_text("NOT SAVED", timeout=TIMEOUT_MS)
    playwright_api.expect(page.locator("#tt_check").first).not_to_contain_text("refused", timeout=TIMEOUT_MS)
