"""Screenshots of each step of the built-in demo, for the README, taken from the running app.

    .venv/bin/python tools/readme_screenshots.py [--out docs/screenshots] [--keep DIR]

Starts ``python -m lib_train_tools --demo`` in a fresh temporary folder (so ``demo_output/`` is new),
drives Debian's headless chromium (``/usr/bin/chromium``, through Playwright) through the steps the
demo prints, as a new user would: project, upload and preprocess, activation tag, the demo preset,
Begin train until the run completes, a preview grid in Results, Publish. After each step it saves
the part of the page that step is about as ``NN-<step>.png``: 1280 px wide at most, reduced to a
256-colour palette so the README stays light. Prints how long the training took. Takes a few
minutes; run it after changing the UI and commit the pictures. Install Debian's
``fonts-noto-color-emoji`` first, or the refresh buttons' 🔄 shows as an empty box.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH = 1280
TIMEOUT_MS = 120_000
TRAIN_TIMEOUT_MS = 1_200_000
PROJECT, VERSION, TAG, PUBLISHED = "shapes", "v1", "shapes", "shapes"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(folder: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), GRADIO_ANALYTICS_ENABLED="False")
    log = open(folder / "app.log", "w", encoding="utf-8")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen([sys.executable, "-m", "lib_train_tools", "--demo", "--port", str(port)],
                               cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the app exited:\n{(folder / 'app.log').read_text(encoding='utf-8')}")
        try:
            with opener.open(f"http://127.0.0.1:{port}/", timeout=5):
                return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("the app did not answer within 300 s")


class Shooter:
    """Saves the part of the page around some elements as an optimised PNG."""

    def __init__(self, page, out: Path) -> None:
        self.page, self.out = page, out
        out.mkdir(parents=True, exist_ok=True)

    def region(self, name: str, selectors: list[str], pad: int = 8, width: int = WIDTH) -> Path:
        boxes = [self.page.evaluate(
            "(s) => { const r = document.querySelector(s).getBoundingClientRect();"
            " return [r.left, r.top + window.scrollY, r.right, r.bottom + window.scrollY]; }", s)
            for s in selectors]
        left, top = min(b[0] for b in boxes) - pad, min(b[1] for b in boxes) - pad
        right, bottom = max(b[2] for b in boxes) + pad, max(b[3] for b in boxes) + pad
        raw = self.out / f".{name}.raw.png"
        self.page.screenshot(path=str(raw), full_page=True)
        with Image.open(raw) as full:
            box = (max(0, int(left)), max(0, int(top)), min(full.width, int(right)), min(full.height, int(bottom)))
            picture = full.convert("RGB").crop(box)
        raw.unlink()
        if picture.width > width:
            picture = picture.resize((width, round(picture.height * width / picture.width)), Image.Resampling.LANCZOS)
        path = self.out / f"{name}.png"
        picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        print(f"[screenshots] {path} ({picture.width}x{picture.height}, {path.stat().st_size // 1024} KiB)", flush=True)
        return path


def field(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def expect_text(page, elem_id: str, text: str, timeout: int = TIMEOUT_MS) -> None:
    import re

    from playwright.sync_api import expect

    expect(page.locator(f"#{elem_id}").first).to_contain_text(re.compile(text), timeout=timeout)


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.locator("ul.options li", has_text=option).first.click()


def walk(page, shots: Shooter, dataset: Path) -> None:
    expect_text(page, "tt_status", "create a project")
    field(page, "tt_name").fill(PROJECT)
    page.click("#tt_create_project")
    expect_text(page, "tt_status", f"created project '{PROJECT}'")
    field(page, "tt_name").fill(VERSION)
    page.click("#tt_create_version")
    expect_text(page, "tt_status", f"created version '{VERSION}'")
    shots.region("01-project", ["#tt_status", "#tt_picker_row", "#tt_manage"])

    files = sorted(p for p in dataset.iterdir() if p.suffix in (".png", ".txt", ".zip"))
    page.set_input_files("#tt_upload_zone input[type=file]", [str(p) for p in files])
    expect_text(page, "tt_gallery_note", "6 uploaded image")
    field(page, "tt_pp_width").fill("64")
    field(page, "tt_pp_height").fill("64")
    page.click("#tt_preprocess")
    expect_text(page, "tt_gallery_note", "6 training image")
    shots.region("02-upload", ["#tt_gallery", "#tt_upload_zone", "#tt_report", "#tt_gallery_note"])

    field(page, "tt_activation").fill(TAG)
    page.click("#tt_set_activation")
    expect_text(page, "tt_tag_table", TAG)
    page.locator("#tt_tag_table").first.scroll_into_view_if_needed()
    shots.region("03-tags", ["#tt_activation", "#tt_tag_table", "#tt_chosen_tags"])

    page.locator("#tt_tabs button", has_text="Train").first.click()
    page.locator("#tt_presets_box").first.click()
    choose(page, "tt_preset", "demo-cpu")
    page.click("#tt_load_preset")
    expect_text(page, "tt_status", "loaded preset 'demo-cpu'")
    expect_text(page, "tt_runs", "1 run will be queued")
    shots.region("04-train-settings", ["#tt_steps", "#tt_check", "#tt_opt_base_model", "#tt_opt_max_train_epochs"])

    started = time.monotonic()
    page.click("#tt_begin_train")
    expect_text(page, "tt_progress", r"step \d+/", TRAIN_TIMEOUT_MS)
    expect_text(page, "tt_progress", "completed", TRAIN_TIMEOUT_MS)
    print(f"[screenshots] training took {time.monotonic() - started:.0f} s (Begin train to completed)", flush=True)
    expect_text(page, "tt_log", "finished: completed")
    shots.region("05-training", ["#tt_training_title", "#tt_progress", "#tt_loss_chart", "#tt_samples", "#tt_queue"])

    page.locator("#tt_tabs button", has_text="Results").first.click()
    choose(page, "tt_results_run", f"{PROJECT}-{VERSION}")
    expect_text(page, "tt_results_checkpoints", r"final \(epoch 2\)")
    # the form was filled when the version was chosen, before the preset: set the demo's size and steps
    for elem_id, value in (("tt_pv_prompt", f"{TAG}, red circle"), ("tt_pv_steps", "8"), ("tt_pv_width", "64"),
                           ("tt_pv_height", "64")):
        field(page, elem_id).fill(value)
    page.click("#tt_pv_render")
    expect_text(page, "tt_status", r"rendered \d+ image", TRAIN_TIMEOUT_MS)
    shots.region("06-results-grid", ["#tt_pv_render", "#tt_pv_grid"], width=900)

    field(page, "tt_pub_name").fill(PUBLISHED)
    page.click("#tt_pub_publish")
    # the final file was published when training ended: renaming that copy is offered instead of a second one
    expect_text(page, "tt_pub_result", "already in the LoRA folder")
    page.click("#tt_pub_overwrite")
    expect_text(page, "tt_pub_result", f"Published {PUBLISHED}")
    shots.region("07-publish", ["#tt_publish_box"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", type=Path, default=None, help="run the demo in this folder and keep it")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        app = start_app(folder, port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"http://127.0.0.1:{port}/")
                walk(page, Shooter(page, args.out), folder / "demo_output" / "dataset")
                browser.close()
        finally:
            app.terminate()
            app.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
