"""The fake WebUI (``fake_webui/modules``) for a test: fresh modules, folders under tmp_path.

Import the fixture into a test module with ``from .webui_fixtures import fake_webui``. Each test
gets newly imported fake modules and newly imported adapter modules (they bind the fake's
objects at import), and both are removed from ``sys.modules`` afterwards.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

FAKE_ROOT = Path(__file__).parent / "fake_webui"
_PURGE_PREFIXES = ("modules", "lib_train_tools.host.webui", "lib_train_tools.webui_extension")


def _purge() -> None:
    for name in [n for n in sys.modules if n == "modules" or n.startswith(_PURGE_PREFIXES)]:
        del sys.modules[name]


@pytest.fixture
def fake_webui(tmp_path):
    _purge()
    sys.path.insert(0, str(FAKE_ROOT))
    try:
        names = ("shared", "sd_models", "call_queue", "paths_internal", "processing", "script_callbacks",
                 "deepbooru", "initialize_util", "forge")
        mods = {name: importlib.import_module(f"modules.{name}") for name in names}
        root = tmp_path / "webui"
        models = root / "models"
        (models / "Stable-diffusion").mkdir(parents=True)
        (models / "Lora").mkdir()
        mods["paths_internal"].script_path = mods["paths_internal"].data_path = str(root)
        mods["paths_internal"].models_path = str(models)
        mods["paths_internal"].default_output_dir = str(root / "outputs")
        mods["shared"].cmd_opts.lora_dir = str(models / "Lora")
        yield SimpleNamespace(root=root, models=models, **mods)
    finally:
        sys.path.remove(str(FAKE_ROOT))
        _purge()


def add_checkpoint(webui, relative: str, folder: Path | None = None) -> Path:
    """A checkpoint file registered in the fake WebUI's lists, as list_models() would."""
    base = folder or webui.models / "Stable-diffusion"
    path = base / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"checkpoint")
    webui.sd_models.CheckpointInfo(str(path), str(base)).register()
    return path
