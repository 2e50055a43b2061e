"""host/webui_modules.py: the one place that imports the WebUI's ``modules``."""

from __future__ import annotations

import ast
from pathlib import Path

from PIL import Image

from .webui_fixtures import fake_webui  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def _imports_modules(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "modules" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "modules":
            return True
    return False


def test_only_webui_modules_imports_the_webuis_modules():
    files = sorted((REPO / "lib_train_tools").rglob("*.py")) + sorted((REPO / "scripts").glob("*.py"))
    found = [p.relative_to(REPO).as_posix() for p in files if _imports_modules(p)]
    assert found == ["lib_train_tools/host/webui_modules.py"]


def test_register_callbacks_hands_the_four_callbacks_to_the_webui(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui_modules import register_callbacks

    class Extension:
        def on_ui_settings(self):
            return None

        def on_ui_tabs(self):
            return []

        def on_app_started(self, demo, app):
            return None

        def on_script_unloaded(self):
            return None

    extension = Extension()
    register_callbacks(extension)
    registered = fake_webui.script_callbacks.callbacks
    assert registered["ui_settings"] == [extension.on_ui_settings]
    assert registered["ui_tabs"] == [extension.on_ui_tabs]
    assert registered["app_started"] == [extension.on_app_started]
    assert registered["script_unloaded"] == [extension.on_script_unloaded]


def test_lazily_imported_modules_are_read_when_called(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui_modules import deepbooru_tag, gradio_auth_creds

    fake_webui.shared.cmd_opts.gradio_auth = "alice:pw:1, bob:pw2"
    fake_webui.shared.cmd_opts.gradio_auth_path = None
    assert gradio_auth_creds() == [("alice", "pw:1"), ("bob", "pw2")]
    assert deepbooru_tag(Image.new("RGB", (4, 4))) == "1girl, solo, smile"
