"""A real browser on the Results tab of the standalone app, over an output folder holding a completed run.

The folder is prepared before the app starts (``completed_run.build_completed_root``: a real tiny
training run, auto-published as ``テスト-v1`` with its end-of-run grid). The walk: open the tab,
pick the run, download a LoRA file through its link, render a 2 x 2 grid (2 epochs x weights 0
and 1), publish under a new name, publish again under the same name and confirm the overwrite.
Screenshots go to ``test-artifacts/browser-results-gradio<major>/``. Runs under both gradio versions.
"""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from .app_server import CHROMIUM_ARGS, REPO_ROOT, AppServer, require_chromium
from .completed_run import ACTIVATION, PROJECT, RUN, VERSION, build_completed_root

playwright_api = pytest.importorskip("playwright.sync_api")
gradio = pytest.importorskip("gradio")

TIMEOUT_MS = 60_000  # generous: a loaded 2-core machine
RENDER_TIMEOUT_MS = 400_000  # 3 images of the tiny model; minutes only when other processes load the CPUs
ARTIFACTS = REPO_ROOT / "test-artifacts" / f"browser-results-gradio{gradio.__version__.split('.')[0]}"
NAME = "browser lora"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return build_completed_root(tmp_path_factory.mktemp("results-app"))


@pytest.fixture(scope="module")
def server(prepared):
    # one torch thread in the app: on a busy 2-core machine, two threads fighting other processes
    # make the tiny model's images several times slower
    app = AppServer.start(prepared.output, prepared.checkpoints, prepared.root / "app.log",
                          env={"OMP_NUM_THREADS": "1"})
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


def expect_text(page, elem_id: str, pattern: str, timeout: int = TIMEOUT_MS) -> None:
    playwright_api.expect(page.locator(f"#{elem_id}").first).to_contain_text(re.compile(pattern), timeout=timeout)


def expect_value(page, elem_id: str, pattern: str) -> None:
    """A textbox's or a single-choice dropdown's value."""
    playwright_api.expect(text_input(page, elem_id)).to_have_value(re.compile(pattern), timeout=TIMEOUT_MS)


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.locator("ul.options li", has_text=option).first.click()


def test_results_tab_renders_a_grid_and_publishes(server, page, prepared):
    page.goto(server.url)
    page.locator("#tt_tabs button", has_text="Results").first.click()
    expect_text(page, "tt_results_runs", "completed")
    expect_text(page, "tt_results_summary", f"Published as.*{PROJECT}-{VERSION}")
    choose(page, "tt_results_run", RUN)
    expect_text(page, "tt_results_checkpoints", r"final \(epoch 2\)")
    expect_value(page, "tt_pv_earlier", "when training ended")
    shot(page, "01-run")

    link = page.locator("#tt_results_checkpoints a", has_text="download").first.get_attribute("href")
    response = page.request.get(urllib.parse.urljoin(server.url, link))
    lora = prepared.run_dir / f"{RUN}-000001.safetensors"
    assert response.status == 200 and response.body() == lora.read_bytes()

    text_input(page, "tt_pv_weights").fill("0, 1")
    text_input(page, "tt_pv_seeds").fill("11")
    page.click("#tt_pv_render")
    expect_text(page, "tt_status", r"rendered 4 image\(s\) \(2 epoch\(s\) × 2 weight\(s\)", RENDER_TIMEOUT_MS)
    playwright_api.expect(page.locator("#tt_pv_grid img").first).to_be_visible(timeout=TIMEOUT_MS)
    grids = sorted((prepared.run_dir / "preview").glob("*/grid.png"))
    assert len(grids) == 2 and len(list(grids[-1].parent.glob("r*_s11.png"))) == 4
    shot(page, "02-grid")
    page.locator("#tt_pv_cells button.thumbnail-item").first.click()  # the card picture: epoch 1 at weight 0
    expect_value(page, "tt_pub_image", r"r00_e000001_w0_s11\.png$")

    expect_value(page, "tt_pub_name", f"^{PROJECT}-{VERSION}-2$")
    text_input(page, "tt_pub_name").fill(NAME)
    page.click("#tt_pub_publish")
    expect_text(page, "tt_pub_result", f"Published {NAME}")
    expect_value(page, "tt_pub_lora_text", re.escape(f"<lora:{NAME}:1> {ACTIVATION}"))
    card = json.loads((prepared.lora_dir / f"{NAME}.json").read_text(encoding="utf-8"))
    assert card["activation text"] == ACTIVATION and card["sd version"] == "SD1"
    final = (prepared.run_dir / f"{RUN}.safetensors").read_bytes()
    assert (prepared.lora_dir / f"{NAME}.safetensors").read_bytes() == final
    cell = next(grids[-1].parent.glob("r00_e000001_w0_s11.png"))
    assert (prepared.lora_dir / f"{NAME}.preview.png").read_bytes() == cell.read_bytes()
    shot(page, "03-published")

    choose(page, "tt_pub_checkpoint", f"{RUN}-000001.safetensors")
    expect_value(page, "tt_pub_notes", r"epoch 1, 4 steps")
    page.click("#tt_pub_publish")
    expect_text(page, "tt_status", "already exists")
    playwright_api.expect(page.locator("#tt_pub_overwrite")).to_be_visible(timeout=TIMEOUT_MS)
    assert (prepared.lora_dir / f"{NAME}.safetensors").read_bytes() == final
    shot(page, "04-asks-before-overwriting")
    page.click("#tt_pub_overwrite")
    expect_text(page, "tt_status", f"published {RUN}-000001.safetensors")
    playwright_api.expect(page.locator("#tt_pub_overwrite")).to_be_hidden(timeout=TIMEOUT_MS)
    assert (prepared.lora_dir / f"{NAME}.safetensors").read_bytes() == lora.read_bytes()
    shot(page, "05-overwritten")
