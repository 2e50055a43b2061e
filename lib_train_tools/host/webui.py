"""The host adapter for the AUTOMATIC1111 v1.10 and Forge WebUIs.

With its ``webui_*.py`` siblings this is the only code that uses the WebUI's ``modules`` (all
imported by ``webui_modules.py``): paths and checkpoints come from the WebUI's own lists and flags
(``--ckpt-dir``, ``--lora-dir``, ``--data-dir``), settings from its Settings page
(``webui_settings.py``), VRAM is freed around a training job (``webui_models.py``), previews are
drawn by its txt2img (``webui_preview.py``), and its BLIP and DeepDanbooru interrogators tag
datasets.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..contracts import CheckpointChoice, HostSettings, Tagger
from ..datasets.taggers import InterrogatorTagger
from .lora_staging import PREVIEW_FOLDER, LoraStaging
from .webui_models import LOG_PREFIX, ModelUnloader, is_forge
from .webui_modules import call_queue, deepbooru_tag, paths_internal, sd_models, shared
from .webui_preview import WebUIPreviewRenderer
from .webui_settings import OUTPUT_DIR, PUBLISH_DIR, folder_option, host_settings, taggers_folder

OUTPUT_FOLDER = "train_tools"


class WebUIHost:
    def __init__(self) -> None:
        forge = is_forge()
        self.name = "forge" if forge else "a1111"
        self._models = ModelUnloader(forge)

    # ----- where things are -----
    def output_root(self) -> Path:
        return folder_option(OUTPUT_DIR) or Path(paths_internal.default_output_dir) / OUTPUT_FOLDER

    def webui_lora_dir(self) -> Path:
        """The folder the Lora extension reads (``--lora-dir``, default ``<models>/Lora``)."""
        configured = getattr(shared.cmd_opts, "lora_dir", None)
        return Path(configured) if configured else Path(paths_internal.models_path) / "Lora"

    def lora_dir(self) -> Path:
        return folder_option(PUBLISH_DIR) or self.webui_lora_dir()

    def taggers_dir(self) -> Path:
        """WD14 tagger folders: the taggers setting, default ``<models>/train_tools_taggers``."""
        return taggers_folder()

    def checkpoints(self) -> list[CheckpointChoice]:
        """The WebUI's checkpoint list as it stands (its refresh button rescans the folders)."""
        found: dict[Path, CheckpointChoice] = {}
        for info in list(sd_models.checkpoints_list.values()):
            path = Path(info.filename)
            found.setdefault(path, CheckpointChoice(title=str(info.name).replace("\\", "/"), path=path))
        return sorted(found.values(), key=lambda c: c.title.lower())

    def python_executable(self) -> str:
        return sys.executable

    def settings(self) -> HostSettings:
        return host_settings()

    # ----- what the WebUI lends -----
    def taggers(self) -> list[Tagger]:
        return [InterrogatorTagger("BLIP (WebUI)", _interrogate_blip, kind="sentence"),
                InterrogatorTagger("DeepDanbooru (WebUI)", _interrogate_deepbooru, kind="tags")]

    def preview_renderer(self) -> WebUIPreviewRenderer:
        return WebUIPreviewRenderer(self.webui_lora_dir(), prepare_model=self.after_training,
                                    release_model=self.before_training)

    def clear_preview_staging(self) -> int:
        """Remove staged preview LoRAs (at start-up and when the extension unloads)."""
        return LoraStaging(self.webui_lora_dir() / PREVIEW_FOLDER).clear()

    def lora_published(self, path: Path) -> None:
        """A LoRA was published: let the Lora extension list it (its cards, ``/sdapi/v1/loras``)."""
        networks = sys.modules.get("networks")  # the built-in Lora extension's module, A1111 and Forge
        refresh = getattr(networks, "list_available_networks", None)
        if callable(refresh) and _inside(Path(path), self.webui_lora_dir()):
            with call_queue.queue_lock:
                refresh()

    # ----- around a training job -----
    def before_training(self) -> None:
        if self.settings().unload_model_while_training:
            _say(self._models.unload())

    def after_training(self) -> None:
        _say(self._models.reload())


def _interrogate_blip(image: Any) -> str:
    with call_queue.queue_lock:
        return shared.interrogator.interrogate(image.convert("RGB"))


def _interrogate_deepbooru(image: Any) -> str:
    with call_queue.queue_lock:
        return deepbooru_tag(image.convert("RGB"))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _say(message: str) -> None:
    if message:
        print(f"{LOG_PREFIX} {message}")


def api_enabled() -> bool:
    """Whether the WebUI serves its HTTP API (``--api``, or ``--nowebui`` = API only)."""
    return bool(getattr(shared.cmd_opts, "api", False) or getattr(shared.cmd_opts, "nowebui", False))
