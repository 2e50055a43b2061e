"""Helpers for the browser tests: a headless chromium page, screenshots and gradio widgets.

Waits are generous (a loaded 2-core machine) and always wait for a condition, never a time.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .app_server import CHROMIUM_ARGS, REPO_ROOT, require_chromium

playwright_api = pytest.importorskip("playwright.sync_api")
gradio = pytest.importorskip("gradio")

TIMEOUT_MS = 60_000
GRADIO_MAJOR = gradio.__version__.split(".")[0]


def artifacts(name: str) -> Path:
    """``test-artifacts/<name>-gradio<major>/``, where a test's screenshots go."""
    return REPO_ROOT / "test-artifacts" / f"{name}-gradio{GRADIO_MAJOR}"


def screenshot(page, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator:
    chromium = require_chromium()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def text_input(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def expect_text(page, elem_id: str, pattern: str, timeout_ms: int = TIMEOUT_MS) -> None:
    # gradio 3 puts an HTML component's elem_id on both its block and its content: take the first
    playwright_api.expect(page.locator(f"#{elem_id}").first).to_contain_text(re.compile(pattern), timeout=timeout_ms)


def expect_value(page, elem_id: str, value: str, pattern: bool = False) -> None:
    """A textbox's or a single-choice dropdown's value: exactly ``value``, or matching it as a regex."""
    wanted = re.compile(value) if pattern else value
    playwright_api.expect(text_input(page, elem_id)).to_have_value(wanted, timeout=TIMEOUT_MS)


def choose(page, elem_id: str, option: str) -> None:
    """Pick ``option`` in a gradio dropdown the way a person does."""
    page.locator(f"#{elem_id} input").first.click()
    page.locator("ul.options li", has_text=option).first.click()


def choose_also(page, elem_id: str, option: str) -> None:
    """Make sure ``option`` is ticked in a multiselect dropdown, leaving the other ticks alone.

    Clicking an option that is already ticked unticks it, so it is clicked only when its token is missing."""
    if page.locator(f"#{elem_id} .token", has_text=option).count() == 0:
        choose(page, elem_id, option)
    playwright_api.expect(page.locator(f"#{elem_id} .token", has_text=option).first).to_be_visible()


def drop_files(page, zone_selector: str, paths: list[Path]) -> None:
    """Drag ``paths`` onto the element ``zone_selector`` as a file manager would (dragover, then drop)."""
    files = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode("ascii")} for p in paths]
    page.locator(zone_selector).first.evaluate(
        """(zone, files) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name));
            }
            const target = zone.firstElementChild || zone;
            for (const type of ["dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true,
                                                          cancelable: true, composed: true}));
            }
        }""",
        files,
    )


def open_tab(page, name: str) -> None:
    page.locator("#tt_tabs button", has_text=name).first.click()
