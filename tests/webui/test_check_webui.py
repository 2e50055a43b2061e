"""Runs check_webui.py and check_webui_browser.py against a running WebUI when TRAIN_TOOLS_WEBUI_URL is
set; skips otherwise.

Also checks the script's own helpers (PNG writing and decoding) without a WebUI.
"""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from . import check_webui


def test_png_round_trip_matches_pillow():
    data = check_webui.png_bytes(5, 3, lambda x, y: (x * 40, y * 80, 7))
    image = Image.open(io.BytesIO(data))
    assert image.size == (5, 3) and image.getpixel((4, 2)) == (160, 160, 7)
    assert check_webui.png_pixels(data) == image.tobytes()
    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize((32, 32)).save(buffer, format="PNG")  # Pillow's filters
    assert check_webui.png_pixels(buffer.getvalue()) == Image.open(buffer).convert("RGB").tobytes()


def test_log_check_flags_lora_problems(tmp_path):
    log = tmp_path / "webui.log"
    log.write_text("old Traceback (most recent call last)\n")
    offset = log.stat().st_size
    with open(log, "a") as handle:
        handle.write("[LORA] Loaded x.safetensors for KModel-UNet with 192 keys at weight 1.0 (skipped 0 keys)\n")
    assert "no LoRA problem line" in check_webui.check_log(log, offset)[0]
    with open(log, "a") as handle:
        handle.write("[LORA] Loading x for KModel with unmatched keys ['lora_unet_bogus']\n")
    with pytest.raises(check_webui.CheckFailed, match="unmatched keys"):
        check_webui.check_log(log, offset)


def test_log_check_tells_refused_nan_images_from_other_tracebacks(tmp_path):
    log = tmp_path / "webui.log"
    nan_block = ("*** API error: POST: /sdapi/v1/txt2img {'error': 'NansException'}\n"
                 "    Traceback (most recent call last):\n      File \"x\", line 1\n    anyio.EndOfStream\n\n"
                 "    During handling of the above exception, another exception occurred:\n\n"
                 "    Traceback (most recent call last):\n      File \"y\", line 2\n"
                 "    modules.devices.NansException: A tensor with NaNs was produced in Unet.\n"
                 "---\nINFO:     127.0.0.1 - \"POST /sdapi/v1/txt2img HTTP/1.1\" 500\n")
    log.write_text(nan_block)
    assert "2 NansException tracebacks" in check_webui.check_log(log, 0)[0]
    log.write_text(nan_block + "Traceback (most recent call last):\n  File \"z\"\nKeyError: 'lora'\n")
    with pytest.raises(check_webui.CheckFailed, match="Traceback"):
        check_webui.check_log(log, 0)


@pytest.mark.skipif(not os.environ.get("TRAIN_TOOLS_WEBUI_URL"),
                    reason="no WebUI configured (set TRAIN_TOOLS_WEBUI_URL, see tests/webui/check_webui.py)")
def test_train_tools_inside_a_running_webui():
    assert check_webui.run(check_webui.parse_args([])) == 0


@pytest.mark.skipif(not os.environ.get("TRAIN_TOOLS_WEBUI_URL"),
                    reason="no WebUI configured (set TRAIN_TOOLS_WEBUI_URL, see tests/webui/check_webui_browser.py)")
def test_the_tab_in_a_browser_inside_a_running_webui(tmp_path):
    pytest.importorskip("playwright.sync_api")
    from . import check_webui_browser

    if not check_webui_browser.CHROMIUM.is_file():
        pytest.skip(f"{check_webui_browser.CHROMIUM} is missing (apt-get install -y chromium)")
    assert check_webui_browser.main(["--out", str(tmp_path)]) == 0
