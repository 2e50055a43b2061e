"""The gallery's flags and "Drop small images" in a real browser (headless chromium), both gradio versions.

A version with three small captioned uploads (64x64: enlarged 8x at 512x512) and one large one
without a caption, preprocessed: the note above the gallery names the small ones and the image
without a caption, whose gallery caption says what it is trained as; "Drop small images" sets the
three aside and reports them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess
from lib_train_tools.datasets.upload import upload
from lib_train_tools.projects import Store

from .app_server import AppServer
from .browser import artifacts, chromium_page, expect_text, screenshot
from .conftest import picture, write_pictures


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("flags")
    store = Store(root / "output")
    store.create_project("テスト")
    store.create_version("テスト", "v1")
    version = store.version("テスト", "v1")
    files = write_pictures(root / "in", 3, captions=["a red cube"])
    picture(7, (512, 512)).save(root / "in" / "big.png")
    upload(version, files + [root / "in" / "big.png"])
    preprocess(version, PreprocessOptions(width=64, height=64))
    server = AppServer.start(root / "output", root / "checkpoints", root / "app.log")
    yield server, store
    server.stop()


def test_small_images_are_flagged_and_dropped(app):
    server, store = app
    folder = artifacts("dataset-flags")
    with chromium_page() as page:
        page.goto(server.url)
        expect_text(page, "tt_gallery_note", "4 training image")
        expect_text(page, "tt_gallery_note", r"3 small images \(training at 512x512 enlarges them: expect blur\): "
                                             r"pic00\.png 64x64 8x, pic01\.png 64x64 8x, pic02\.png 64x64 8x")
        expect_text(page, "tt_gallery_note", "1 image without a caption, trained as 'テスト': big")
        expect_text(page, "tt_gallery", r"\(no caption: trained as 'テスト'\)")
        screenshot(page, folder, "flagged")
        page.click("#tt_drop_small")
        expect_text(page, "tt_status", "dropped 3 small image")
        expect_text(page, "tt_report", r"Dropped \(3\)")
        expect_text(page, "tt_report", "pic00.png: 64x64, training would enlarge it 8x")
        expect_text(page, "tt_gallery_note", "1 uploaded image")
        screenshot(page, folder, "dropped")
    origin = store.version("テスト", "v1").origin
    assert sorted(p.name for p in Path(origin).iterdir()) == ["big.png"]
