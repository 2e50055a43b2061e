"""The VRAM estimate line: shown when the estimator and a base model family are known."""

from __future__ import annotations

import re
import sys

import pytest

from lib_train_tools.ui.vram import vram_text


def gib(text: str) -> float:
    return float(re.search(r"about ([\d.]+) GiB", text).group(1))


def test_estimate_grows_with_batch_size_and_resolution():
    pytest.importorskip("lib_train_tools.train.memory_estimate")
    small = vram_text({"train_batch_size": 1}, "sd1")
    assert gib(vram_text({"train_batch_size": 4}, "sd1")) > gib(small)
    assert gib(vram_text({}, "sdxl")) > gib(small)  # SDXL defaults to 1024 pixels
    assert "choose a readable base model" in vram_text({}, None)


def test_nothing_is_shown_without_the_estimator(monkeypatch):
    monkeypatch.setitem(sys.modules, "lib_train_tools.train.memory_estimate", None)
    assert vram_text({}, "sd1") == ""
