"""The VRAM estimate line: shown once the base model family is known, for the options a run would get."""

from __future__ import annotations

import re

from lib_train_tools.ui.vram import vram_text


def gib(text: str) -> float:
    return float(re.search(r"about ([\d.]+) GiB", text).group(1))


def test_estimate_grows_with_batch_size_and_resolution():
    small = vram_text({"train_batch_size": 1}, "sd1")
    assert gib(vram_text({"train_batch_size": 4}, "sd1")) > gib(small)
    assert gib(vram_text({}, "sdxl")) > gib(small)  # SDXL defaults to 1024 pixels
    assert "choose a readable base model" in vram_text({}, None)


def test_locon_estimates_the_convolutions_with_network_dim_by_default():
    lora = gib(vram_text({"network_dim": 64}, "sd1"))
    locon = gib(vram_text({"network_dim": 64, "network_type": "LoCon"}, "sd1"))
    assert locon > lora
    assert vram_text({"network_dim": 64, "network_type": "LoCon", "conv_dim": 64}, "sd1") == \
        vram_text({"network_dim": 64, "network_type": "LoCon"}, "sd1")
    assert vram_text({"network_dim": 64, "conv_dim": 512}, "sd1") == vram_text({"network_dim": 64}, "sd1")
    assert "unavailable" in vram_text({"network_type": "LoHa"}, "sd1")
