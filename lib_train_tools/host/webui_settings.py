"""The "Train Tools" section of the WebUI's Settings: declared once, registered, and read back.

Options live in the WebUI's ``config.json`` under ``train_tools_*`` keys. They are read from
``shared.opts.data`` with the defaults declared here, so they work before the Settings page was
ever built (API-only mode never builds it; the section is then registered at app start so
``/sdapi/v1/options`` can set them). The component of each option follows from its default's type
(text box, check box, number), so this module needs no gradio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..contracts import HostSettings
from .webui_modules import paths_internal, shared

SECTION = ("train_tools", "Train Tools")
CATEGORY = "training"

OUTPUT_DIR = "train_tools_output_dir"
UNLOAD_MODEL = "train_tools_unload_model"
KEEP_LAST_N = "train_tools_keep_last_n"
PUBLISH_DIR = "train_tools_publish_dir"
AUTO_PUBLISH = "train_tools_auto_publish"
TAGGERS_DIR = "train_tools_taggers_dir"
# The default taggers folder, under the WebUI's models folder (which follows --models-dir / --data-dir).
TAGGERS_MODELS_FOLDER = "train_tools_taggers"


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class WebUIOption:
    key: str
    default: Any                                  # a value, or a callable giving it (decided at start)
    label: str
    info: str = ""
    needs_restart: bool = False
    component_args: Optional[dict] = None

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


OPTIONS: tuple[WebUIOption, ...] = (
    WebUIOption(OUTPUT_DIR, "", "Folder for projects, runs and the job queue",
                "empty: outputs/train_tools in the WebUI's folder", needs_restart=True),
    WebUIOption(UNLOAD_MODEL, cuda_available, "Unload the WebUI's checkpoint from VRAM while a training job runs",
                "frees VRAM for the trainer; generating while it trains is then slow or fails on A1111 (Forge "
                "reloads by itself); on by default with CUDA"),
    WebUIOption(KEEP_LAST_N, 0, "Keep only the last N epoch files of each run",
                "0 keeps every epoch file", component_args={"precision": 0}),
    WebUIOption(PUBLISH_DIR, "", "Publish folder", "empty: the WebUI's LoRA folder (--lora-dir, models/Lora)"),
    WebUIOption(AUTO_PUBLISH, True, "Publish a finished run's final file as <project>-<version> automatically"),
    WebUIOption(TAGGERS_DIR, "", "Folder for WD14 taggers (downloads go here, each in its own subfolder)",
                f"empty: models/{TAGGERS_MODELS_FOLDER} in the WebUI's folder; taggers already in the "
                "output folder's taggers/ stay listed too"),
)
OPTIONS_BY_KEY = {option.key: option for option in OPTIONS}


def register_settings() -> None:
    """Add the section to the WebUI's settings (again after a UI reload: the same keys are replaced)."""
    for option in OPTIONS:
        info = shared.OptionInfo(option.default_value(), option.label, component_args=option.component_args,
                                 section=SECTION, category_id=CATEGORY)
        if option.info:
            info = info.info(option.info)
        if option.needs_restart:
            info = info.needs_restart()
        shared.opts.add_option(option.key, info)


def settings_registered() -> bool:
    return all(key in shared.opts.data_labels for key in OPTIONS_BY_KEY)


def option_value(key: str) -> Any:
    """The saved value of one of our options, or its default."""
    option = OPTIONS_BY_KEY[key]
    data = getattr(shared.opts, "data", None) or {}
    return data[key] if key in data and data[key] is not None else option.default_value()


def host_settings(read: Callable[[str], Any] = option_value) -> HostSettings:
    """The options that ``HostSettings`` carries; a bad saved value falls back to the default."""
    try:
        keep = max(0, int(read(KEEP_LAST_N)))
    except (TypeError, ValueError):
        keep = 0
    return HostSettings(auto_publish=bool(read(AUTO_PUBLISH)), unload_model_while_training=bool(read(UNLOAD_MODEL)),
                        keep_last_n_checkpoints=keep)


def folder_option(key: str) -> Optional[Path]:
    """A folder option as a path, or None when it is empty (the default folder applies)."""
    text = str(option_value(key) or "").strip()
    return Path(text).expanduser() if text else None


def taggers_folder() -> Path:
    """Where WD14 taggers are downloaded and looked for: the setting, else ``<models>/train_tools_taggers``."""
    return folder_option(TAGGERS_DIR) or Path(paths_internal.models_path) / TAGGERS_MODELS_FOLDER
