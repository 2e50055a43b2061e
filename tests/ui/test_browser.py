"""A real browser (Playwright driving Debian's headless chromium) against the standalone app.

One walk through the tab as a new user takes it: a refused name, project ``テスト`` and a
version, four pictures and a zip uploaded, preprocessing, an activation tag seen in the tag
table, switching versions, and the Train tab's live step count. Screenshots of every stage go
to ``test-artifacts/browser-gradio<major>/``. Runs under both gradio versions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .app_server import CHROMIUM_ARGS, REPO_ROOT, AppServer, require_chromium
from .conftest import write_pictures, write_zip

playwright_api = pytest.importorskip("playwright.sync_api")
gradio = pytest.importorskip("gradio")

TIMEOUT_MS = 60_000  # generous: a loaded 2-core machine
ARTIFACTS = REPO_ROOT / "test-artifacts" / f"browser-gradio{gradio.__version__.split('.')[0]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    app = AppServer.start(root / "output", root / "checkpoints", root / "app.log")
    yield app
    app.stop()


@pytest.fixture(scope="module")
def page(server):
    chromium = require_chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def text_input(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def expect_text(page, elem_id: str, pattern: str) -> None:
    # gradio 3 puts an HTML component's elem_id on both its block and its content: take the first
    playwright_api.expect(page.locator(f"#{elem_id}").first).to_contain_text(re.compile(pattern), timeout=TIMEOUT_MS)


def choose(page, elem_id: str, option: str) -> None:
    """Pick ``option`` in a gradio dropdown the way a person does."""
    page.locator(f"#{elem_id} input").first.click()
    page.locator("ul.options li", has_text=option).first.click()


def test_new_user_walks_through_the_tab(server, page, tmp_path: Path):
    page.goto(server.url)
    expect_text(page, "tt_status", "create a project")
    shot(page, "01-empty")

    text_input(page, "tt_name").fill("a/b")
    page.click("#tt_create_project")
    expect_text(page, "tt_status", "cannot be used: it contains a slash")

    text_input(page, "tt_name").fill("テスト")
    page.click("#tt_create_project")
    expect_text(page, "tt_status", "created project 'テスト'")
    text_input(page, "tt_name").fill("v1")
    page.click("#tt_create_version")
    expect_text(page, "tt_status", "created version 'v1'")
    expect_text(page, "tt_gallery_note", "No images yet")
    shot(page, "02-project-and-version")

    pictures = write_pictures(tmp_path / "loose", 4)
    zipped = write_zip(tmp_path / "more.zip", write_pictures(tmp_path / "zipped", 2, start=10, captions=["from zip"]))
    page.set_input_files("#tt_upload input[type=file]", [str(p) for p in pictures + [zipped]])
    expect_text(page, "tt_report", r"Accepted \(8\)")
    expect_text(page, "tt_gallery_note", "6 uploaded image")
    shot(page, "03-uploaded")

    text_input(page, "tt_pp_width").fill("64")
    text_input(page, "tt_pp_height").fill("64")
    page.click("#tt_preprocess")
    expect_text(page, "tt_gallery_note", "6 training image")
    expect_text(page, "tt_tag_table", "from zip")
    shot(page, "04-preprocessed")

    text_input(page, "tt_activation").fill("mychar")
    page.click("#tt_set_activation")
    expect_text(page, "tt_status", "activation tag 'mychar'")
    expect_text(page, "tt_tag_table", "mychar")
    shot(page, "05-activation-tag")

    text_input(page, "tt_name").fill("v2")
    page.click("#tt_create_version")
    expect_text(page, "tt_gallery_note", "No images yet")
    choose(page, "tt_version", "v1")
    expect_text(page, "tt_gallery_note", "6 training image")

    page.locator("#tt_tabs button", has_text="Train").first.click()
    expect_text(page, "tt_steps", r"6 images × \d+ repeats")
    epochs = page.locator("#tt_opt_max_train_epochs input").first
    epochs.fill("5")
    epochs.press("Tab")
    expect_text(page, "tt_steps", r"steps per epoch × 5 epochs = \d+ steps")
    expect_text(page, "tt_status", "max_train_epochs = 5 saved")
    shot(page, "06-train-steps")

    page.reload()
    page.locator("#tt_tabs button", has_text="Train").first.click()
    playwright_api.expect(page.locator("#tt_opt_max_train_epochs input").first).to_have_value("5", timeout=TIMEOUT_MS)
    shot(page, "07-settings-restored")
