#!/usr/bin/env python3
"""The Train Tools tab in a real browser inside a running WebUI (A1111: gradio 3, Forge: gradio 4).

    python tests/webui/check_webui_browser.py --url http://127.0.0.1:7861 [--out DIR] [--user U --password P]

Playwright drives Debian's headless chromium (``/usr/bin/chromium``; nothing is downloaded):
opens the WebUI, clicks the *Train Tools* tab, creates a project and a version with the tab's own
controls, switches between the tab's Dataset and Train sub-tabs, and opens the WebUI's Settings
on the Train Tools section. Passes when every step shows what it should, the project exists
afterwards (asked through /train-tools/v1/projects), and the page reported no JavaScript error
from Train Tools. Screenshots go to ``--out``. ``test_check_webui.py`` runs it under pytest when
TRAIN_TOOLS_WEBUI_URL is set and chromium is installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 120_000   # a loaded 2-core machine; the WebUI page is large


def _projects(url: str, credentials: str | None) -> list[str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{url}/train-tools/v1/projects")
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    with opener.open(request, timeout=60) as answer:
        return [p["name"] for p in json.loads(answer.read())]


def run(url: str, out: Path, credentials: str | None = None) -> list[str]:
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    notes, errors = [], []
    project = f"ttbrowser-{time.strftime('%H%M%S')}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
        page.goto(url)
        tab_button = page.locator("#tabs > .tab-nav button").filter(has_text=re.compile(r"^\s*Train Tools\s*$"))
        expect(tab_button).to_have_count(1)
        tab_button.click()
        status = page.locator("#tab_train_tools #tt_status").first
        expect(status).to_be_visible()
        notes.append(f"tab opened; status line: {status.inner_text().strip()[:120]!r}")
        page.screenshot(path=str(out / "01-tab.png"))

        name = page.locator("#tt_name textarea, #tt_name input").first
        name.fill(project)
        page.locator("#tt_create_project").click()
        expect(status).to_contain_text(f"created project '{project}'")
        name.fill("v1")
        page.locator("#tt_create_version").click()
        expect(status).to_contain_text("created version 'v1'")
        notes.append(f"created project {project!r} and version 'v1' with the tab's buttons")
        page.screenshot(path=str(out / "02-created.png"))

        page.locator("#tab_train_tools button").filter(has_text=re.compile(r"^\s*Train\s*$")).first.click()
        expect(page.locator("#tab_train_tools").get_by_text("Base model").first).to_be_visible()
        notes.append("the tab's Train sub-tab shows its settings form")
        page.screenshot(path=str(out / "03-train.png"))

        page.locator("#tabs > .tab-nav button").filter(has_text=re.compile(r"^\s*Settings\s*$")).click()
        page.locator("#settings .tab-nav button, #settings button").filter(
            has_text=re.compile(r"^\s*Train Tools\s*$")).first.click()
        expect(page.locator("#setting_train_tools_unload_model")).to_be_visible()
        notes.append("Settings -> Train Tools shows the section's options")
        page.screenshot(path=str(out / "04-settings.png"))
        browser.close()
    if project not in _projects(url, credentials):
        raise AssertionError(f"{project} is not in /train-tools/v1/projects after creating it in the tab")
    notes.append(f"/train-tools/v1/projects lists {project!r}")
    ours = [e for e in errors if re.search(r"train[_ -]?tools|tt_", e, re.IGNORECASE)]
    if ours:
        raise AssertionError("JavaScript errors from Train Tools:\n  " + "\n  ".join(ours))
    notes.append(f"no JavaScript error from Train Tools ({len(errors)} other console errors: "
                 f"{'; '.join(e[:100] for e in errors[:3])})")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("TRAIN_TOOLS_WEBUI_URL"))
    parser.add_argument("--out", default="test-artifacts/webui-browser")
    parser.add_argument("--user", default=os.environ.get("TRAIN_TOOLS_WEBUI_USER"))
    parser.add_argument("--password", default=os.environ.get("TRAIN_TOOLS_WEBUI_PASSWORD"))
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url (or TRAIN_TOOLS_WEBUI_URL) is required")
    try:
        credentials = f"{args.user}:{args.password or ''}" if args.user else None
        for line in run(args.url.rstrip("/"), Path(args.out), credentials):
            print(f"PASS browser: {line}", flush=True)
    except Exception as exc:  # report and fail; the screenshots so far stay in --out
        print(f"FAIL browser: {type(exc).__name__}: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
