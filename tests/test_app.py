"""The standalone app's command line and set-up (serving is covered by tests/ui/test_browser.py)."""

from __future__ import annotations

import os
from pathlib import Path

from lib_train_tools import app


def test_defaults_and_flags():
    args = app.parse_args([])
    assert (args.host, args.port, args.output, args.demo) == ("127.0.0.1", 7870, None, False)
    args = app.parse_args(["--port", "9000", "--output", "o", "--checkpoints", "c", "--lora-dir", "l", "--demo"])
    assert (args.port, args.output, args.checkpoints, args.lora_dir, args.demo) == (9000, Path("o"), Path("c"),
                                                                                  Path("l"), True)


def test_page_assets_are_the_extensions_files():
    css, js = app.page_assets()
    assert "#train_tools" in css
    assert "Train Tools" in js


def test_localhost_is_never_proxied(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "example.org")
    monkeypatch.delenv("no_proxy", raising=False)
    app.localhost_without_proxy()
    assert os.environ["NO_PROXY"].split(",") == ["example.org", "127.0.0.1", "localhost", "::1"]
    assert "127.0.0.1" in os.environ["no_proxy"]


def test_demo_set_up_writes_model_dataset_and_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    services, blocks, files = app.build_app(app.parse_args(["--demo"]))
    try:
        assert files.checkpoint == Path("demo_output/checkpoints/demo-sd1.safetensors")
        assert [c.title for c in services.host.checkpoints()] == ["demo-sd1.safetensors"]
        assert len(list(files.dataset.glob("*.png"))) == 4 and files.zip_file.is_file()
        assert (tmp_path / "demo_output/train_tools/presets/demo-cpu.json").is_file()
        assert blocks.css and "#train_tools" in blocks.css
    finally:
        services.shutdown()
