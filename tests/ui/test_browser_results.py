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

from .app_server import AppServer
from .browser import (
    TIMEOUT_MS,
    artifacts,
    choose,
    chromium_page,
    expect_text,
    expect_value,
    open_tab,
    playwright_api,
    screenshot,
    text_input,
)
from .completed_run import ACTIVATION, PROJECT, RUN, VERSION, build_completed_root

RENDER_TIMEOUT_MS = 400_000  # 3 images of the tiny model; minutes only when other processes load the CPUs
ARTIFACTS = artifacts("browser-results")
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
    with chromium_page() as page:
        yield page


def shot(page, name: str) -> None:
    screenshot(page, ARTIFACTS, name)


def test_results_tab_renders_a_grid_and_publishes(server, page, prepared):
    page.goto(server.url)
    open_tab(page, "Results")
    expect_text(page, "tt_results_runs", "completed")
    expect_text(page, "tt_results_summary", f"Published as.*{PROJECT}-{VERSION}")
    choose(page, "tt_results_run", RUN)
    expect_text(page, "tt_results_checkpoints", r"final \(epoch 2\)")
    expect_value(page, "tt_pv_earlier", "when training ended", pattern=True)
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
    expect_value(page, "tt_pub_image", r"r00_e000001_w0_s11\.png$", pattern=True)

    expect_value(page, "tt_pub_name", f"{PROJECT}-{VERSION}-2")
    text_input(page, "tt_pub_name").fill(NAME)
    page.click("#tt_pub_publish")
    # the final file is in the LoRA folder already (published when the run ended): a rename is offered...
    expect_text(page, "tt_pub_result", f"already in the LoRA folder as “{PROJECT}-{VERSION}”")
    playwright_api.expect(page.locator("#tt_pub_overwrite")).to_have_text("Rename instead", timeout=TIMEOUT_MS)
    page.click("#tt_pub_publish")  # ...and Publish pressed again keeps both copies
    expect_text(page, "tt_pub_result", f"Published {NAME}")
    assert (prepared.lora_dir / f"{PROJECT}-{VERSION}.safetensors").is_file()
    expect_value(page, "tt_pub_lora_text", re.escape(f"<lora:{NAME}:1> {ACTIVATION}"), pattern=True)
    card = json.loads((prepared.lora_dir / f"{NAME}.json").read_text(encoding="utf-8"))
    assert card["activation text"] == ACTIVATION and card["sd version"] == "SD1"
    final = (prepared.run_dir / f"{RUN}.safetensors").read_bytes()
    assert (prepared.lora_dir / f"{NAME}.safetensors").read_bytes() == final
    cell = next(grids[-1].parent.glob("r00_e000001_w0_s11.png"))
    assert (prepared.lora_dir / f"{NAME}.preview.png").read_bytes() == cell.read_bytes()
    shot(page, "03-published")

    choose(page, "tt_pub_checkpoint", f"{RUN}-000001.safetensors")
    expect_value(page, "tt_pub_notes", r"epoch 1, 4 steps", pattern=True)
    page.click("#tt_pub_publish")
    expect_text(page, "tt_status", "already exists")
    playwright_api.expect(page.locator("#tt_pub_overwrite")).to_be_visible(timeout=TIMEOUT_MS)
    assert (prepared.lora_dir / f"{NAME}.safetensors").read_bytes() == final
    shot(page, "04-asks-before-overwriting")
    playwright_api.expect(page.locator("#tt_pub_overwrite")).to_have_text("Overwrite", timeout=TIMEOUT_MS)
    page.click("#tt_pub_overwrite")
    expect_text(page, "tt_status", f"published {RUN}-000001.safetensors")
    playwright_api.expect(page.locator("#tt_pub_overwrite")).to_be_hidden(timeout=TIMEOUT_MS)
    assert (prepared.lora_dir / f"{NAME}.safetensors").read_bytes() == lora.read_bytes()
    shot(page, "05-overwritten")
