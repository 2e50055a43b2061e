"""A real browser (Playwright driving Debian's headless chromium) against the standalone app.

One walk through the tab as a new user takes it, in order (the tests share the app and page):
a refused name, project ``テスト`` and a version, four pictures and a zip uploaded (and one picture
dragged onto the drop zone of a second version),
preprocessing, an activation tag seen in the tag table, switching versions, the Train tab's live
step count and settings kept over a reload; then a real (tiny) training run: 64 px, 1 repeat,
2 epochs on a generated SD1 model, Begin train, the progress bar and loss chart, a page reload
while it trains, the bar reaching the end; then Results: the run's checkpoints, a 2 x 2 preview
grid (2 epochs x weights 0 and 1), Publish under a new name and its three files in the LoRA
folder. Screenshots of every stage go to ``test-artifacts/browser-gradio<major>/``. Runs under
both gradio versions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib_train_tools.models.checkpoint_factory import write_checkpoint

from .app_server import AppServer
from .browser import (
    artifacts,
    choose,
    choose_also,
    chromium_page,
    drop_files,
    expect_text,
    expect_value,
    open_tab,
    playwright_api,
    screenshot,
    text_input,
)
from .conftest import write_pictures, write_zip

TIMEOUT_MS = 60_000  # generous: a loaded 2-core machine
TRAINING_TIMEOUT_MS = 900_000  # 12 steps of the tiny model, slow when other work shares the CPU
RENDER_TIMEOUT_MS = 600_000  # 4 pictures of the tiny model
BASE_MODEL = "tiny-sd1.safetensors"
PUBLISHED = "テスト-lora"


@pytest.fixture(scope="module")
def app_root(tmp_path_factory):
    return tmp_path_factory.mktemp("app")
ARTIFACTS = artifacts("browser")


@pytest.fixture(scope="module")
def server(app_root):
    root = app_root
    write_checkpoint(root / "checkpoints" / BASE_MODEL, family="sd1", seed=0)
    # one torch thread (the trainer and the preview): on a busy 2-core machine two threads that
    # fight other processes make the tiny model several times slower
    app = AppServer.start(root / "output", root / "checkpoints", root / "app.log", env={"OMP_NUM_THREADS": "1"})
    yield app
    app.stop()


@pytest.fixture(scope="module")
def page(server):
    with chromium_page() as page:
        yield page


def shot(page, name: str) -> None:
    screenshot(page, ARTIFACTS, name)


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
    page.set_input_files("#tt_upload_zone input[type=file]", [str(p) for p in pictures + [zipped]])
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
    drop_files(page, "#tt_upload_zone", pictures[:1])  # dragged onto the drop zone instead of chosen
    expect_text(page, "tt_report", r"Accepted \(1\)")
    expect_text(page, "tt_gallery_note", "1 uploaded image")
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


def set_field(page, name: str, value: str, saved: str) -> None:
    """Type into a settings field and leave it (fields save when left)."""
    box = text_input(page, f"tt_opt_{name}")
    box.fill(value)
    box.press("Tab")
    expect_text(page, "tt_status", f"{name} = {saved} saved")


def expect_progress(page, pattern: str, timeout_ms: int = TIMEOUT_MS) -> None:
    expect_text(page, "tt_progress", pattern, timeout_ms)


def test_a_tiny_training_run_shows_live_progress_across_a_reload(server, page):
    choose(page, "tt_opt_base_model", BASE_MODEL)
    expect_text(page, "tt_status", f"base_model = '{BASE_MODEL}' saved")
    expect_text(page, "tt_architecture", "Detected: SD1")
    set_field(page, "resolution", "64", "'64'")
    set_field(page, "repeats", "1", "1")
    set_field(page, "max_train_epochs", "2", "2")
    expect_text(page, "tt_steps", r"6 images × 1 repeats = 6 samples ÷ batch 1 = 6 steps per epoch × 2 epochs = 12 ")
    expect_text(page, "tt_runs", "1 run will be queued: テスト-v1")
    expect_text(page, "tt_check", "no problems")
    shot(page, "08-train-settings")

    page.click("#tt_begin_train")
    expect_text(page, "tt_status", r"queued 1 run of テスト/v1 \(テスト-v1\); training starts now")
    expect_progress(page, r"step \d+/12", TRAINING_TIMEOUT_MS)
    shot(page, "09-training")

    page.reload()  # the page forgets everything: the state comes back from the job queue
    open_tab(page, "Train")
    expect_progress(page, r"テスト-v1.*(training|completed)")
    expect_progress(page, r"step \d+/12")
    shot(page, "10-after-reload")

    expect_progress(page, "completed", TRAINING_TIMEOUT_MS)
    bar = page.locator("#tt_progress .tt-bar").first
    playwright_api.expect(bar).to_have_attribute("data-fraction", "1.000")
    expect_progress(page, r"step 12/12 · epoch 2/2 · loss \d")
    chart = page.locator("#tt_loss_chart svg.tt-loss-chart").first
    playwright_api.expect(chart).to_have_attribute("data-points", "12", timeout=TIMEOUT_MS)
    expect_text(page, "tt_queue", "completed")
    expect_text(page, "tt_log", "finished: completed")
    shot(page, "11-trained")


def test_the_run_is_previewed_and_published_from_results(server, page, app_root):
    open_tab(page, "Results")
    expect_text(page, "tt_results_runs", "completed")
    choose(page, "tt_results_run", "テスト-v1")
    expect_text(page, "tt_results_checkpoints", r"final \(epoch 2\)")
    shot(page, "12-results")

    # the panel was first filled mid-training (epoch 1 only) and keeps the ticked epochs: add the final one
    choose_also(page, "tt_pv_epochs", "テスト-v1.safetensors")
    text_input(page, "tt_pv_weights").fill("0, 1")
    text_input(page, "tt_pv_seeds").fill("7")
    text_input(page, "tt_pv_steps").fill("8")
    page.click("#tt_pv_render")
    expect_text(page, "tt_status", r"rendered 4 image\(s\) \(2 epoch\(s\) × 2 weight\(s\)", RENDER_TIMEOUT_MS)
    playwright_api.expect(page.locator("#tt_pv_grid img").first).to_be_visible(timeout=TIMEOUT_MS)
    page.locator("#tt_pv_cells button.thumbnail-item").nth(3).click()  # epoch 2 at weight 1: the card picture
    expect_value(page, "tt_pub_image", r"r01_.*_w1_s7\.png$", pattern=True)
    shot(page, "13-preview-grid")

    choose(page, "tt_pub_checkpoint", "テスト-v1.safetensors")  # the final file (see the epochs above)
    text_input(page, "tt_pub_name").fill(PUBLISHED)
    page.click("#tt_pub_publish")
    # published automatically when the run ended: renaming that copy is offered instead of a second one
    expect_text(page, "tt_pub_result", "already in the LoRA folder as “テスト-v1”")
    page.click("#tt_pub_overwrite")  # labelled "Rename instead"
    expect_text(page, "tt_pub_result", f"Published {PUBLISHED}")
    lora_dir = app_root / "output" / "lora"
    names = {p.name for p in lora_dir.iterdir()}
    assert {f"{PUBLISHED}.safetensors", f"{PUBLISHED}.preview.png", f"{PUBLISHED}.json"} <= names
    assert "テスト-v1.safetensors" not in names  # renamed, not copied twice
    card = json.loads((lora_dir / f"{PUBLISHED}.json").read_text(encoding="utf-8"))
    assert card["activation text"] == "mychar" and card["sd version"] == "SD1"
    run_dir = app_root / "output" / "projects" / "テスト" / "versions" / "v1" / "trains" / "テスト-v1"
    assert (lora_dir / f"{PUBLISHED}.safetensors").read_bytes() == (run_dir / "テスト-v1.safetensors").read_bytes()
    shot(page, "14-published")
