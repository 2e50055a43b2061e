"""The WebUI's ``modules``: the one file of Train Tools that imports them (A1111 v1.10 and Forge).

The other WebUI adapters (``webui.py``, ``webui_auth.py``, ``webui_models.py``,
``webui_preview.py``, ``webui_settings.py``) and ``scripts/train_tools.py`` take the WebUI's
modules and functions from here. The modules imported at the top are the ones the WebUI has loaded
before it runs an extension's scripts (its start-up imports ``processing`` and ``ui``, which bring
in the rest), so importing this file loads nothing new. ``deepbooru`` and ``initialize_util`` are
imported only inside the functions that need them, as the WebUI itself does.

Everything here is read at call time (``shared.opts``, ``sd_models.checkpoints_list``, ...): the
WebUI replaces those objects as it runs, and a module object stays the same.
"""

from __future__ import annotations

from typing import Any, Protocol

from modules import call_queue, paths_internal, processing, script_callbacks, sd_models, shared

__all__ = ["ExtensionCallbacks", "call_queue", "deepbooru_tag", "gradio_auth_creds", "paths_internal",
           "processing", "register_callbacks", "sd_models", "shared"]


class ExtensionCallbacks(Protocol):
    """What ``register_callbacks`` hands to the WebUI (``webui_extension.TrainToolsExtension``)."""

    def on_ui_settings(self) -> None: ...

    def on_ui_tabs(self) -> list: ...

    def on_app_started(self, demo: Any, app: Any) -> None: ...

    def on_script_unloaded(self) -> None: ...


def register_callbacks(extension: ExtensionCallbacks) -> None:
    """Register the extension's callbacks with the WebUI (done again by each "Reload UI")."""
    script_callbacks.on_ui_settings(extension.on_ui_settings)
    script_callbacks.on_ui_tabs(extension.on_ui_tabs)
    script_callbacks.on_app_started(extension.on_app_started)
    script_callbacks.on_script_unloaded(extension.on_script_unloaded)


def deepbooru_tag(image: Any) -> str:
    """DeepDanbooru's tags for a PIL image, comma-separated (the caller holds the queue lock)."""
    from modules import deepbooru

    return deepbooru.model.tag(image)


def gradio_auth_creds() -> list[tuple[str, ...]]:
    """The UI's credentials from ``--gradio-auth`` and ``--gradio-auth-path`` as the WebUI reads them."""
    from modules import initialize_util

    return [tuple(pair) for pair in initialize_util.get_gradio_auth_creds()]
