"""The standalone app's command line and set-up (serving is covered by tests/ui/test_browser.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import FastAPI

from lib_train_tools import app


def test_defaults_and_flags():
    args = app.parse_args([])
    assert (args.host, args.port, args.output, args.demo, args.api_auth) == ("127.0.0.1", 7870, None, False, None)
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


def test_api_auth_takes_the_webuis_syntax():
    args = app.parse_args(["--api-auth", "alice:pw1, bob:p:w:2"])
    assert args.api_auth == {"alice": "pw1", "bob": "p:w:2"}


@pytest.mark.parametrize("value", ["alice", "", ":nouser", " , "])
def test_api_auth_without_a_user_and_password_is_refused(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        app.parse_args(["--api-auth", value])
    assert exit_info.value.code == 2
    assert "--api-auth" in capsys.readouterr().err


def test_serve_api_mounts_the_api_with_the_credentials(tmp_path):
    from lib_train_tools.api.mount import api_paths

    from .api.fakes import make_services

    fastapi_app = FastAPI()
    policy = app.serve_api(fastapi_app, make_services(tmp_path), {"alice": "pw"})
    assert policy.required and dict(policy.credentials) == {"alice": "pw"}
    assert "/train-tools/v1/projects" in api_paths(fastapi_app)
    assert not app.serve_api(FastAPI(), make_services(tmp_path), None).required


def test_api_url_is_beside_the_page():
    assert app.api_url("http://127.0.0.1:7870/") == "http://127.0.0.1:7870/train-tools/v1/"
