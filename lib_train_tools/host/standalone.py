"""The host for the standalone app (``python -m lib_train_tools``): plain folders given as flags.

Base checkpoints are every ``.safetensors``/``.ckpt`` file under the checkpoints folder (titles
are paths relative to it, with forward slashes); WD14 taggers are the subfolders of the taggers
folder (``--taggers``, default ``<output_root>/taggers/``) that hold a WD14 model, and downloaded
taggers go there; previews are drawn with our own sampler from ``results/``. The host keeps one
renderer, so the base model it loaded stays cached between previews; before a training job
starts, the renderer lets go of it (the trainer subprocess needs the memory more).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from ..contracts import TAGGERS_FOLDER, CheckpointChoice, HostSettings, PreviewRenderer, Tagger, find_wd14_folders

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


class StandaloneHost:
    name = "standalone"

    def __init__(
        self,
        output_root: str | os.PathLike,
        checkpoints_dir: str | os.PathLike,
        lora_dir: str | os.PathLike | None = None,
        settings: HostSettings = HostSettings(),
        taggers_dir: str | os.PathLike | None = None,
    ):
        self._output_root = Path(output_root).resolve()
        self._checkpoints_dir = Path(checkpoints_dir).resolve()
        self._lora_dir = Path(lora_dir).resolve() if lora_dir else self._output_root / "lora"
        self._taggers_dir = Path(taggers_dir).resolve() if taggers_dir else self._output_root / TAGGERS_FOLDER
        self._settings = settings
        self._renderer: PreviewRenderer | None = None
        self._renderer_lock = threading.Lock()

    def output_root(self) -> Path:
        return self._output_root

    def lora_dir(self) -> Path:
        return self._lora_dir

    def checkpoints_dir(self) -> Path:
        return self._checkpoints_dir

    def checkpoints(self) -> list[CheckpointChoice]:
        return scan_checkpoints(self._checkpoints_dir)

    def taggers_dir(self) -> Path:
        """WD14 tagger folders: ``--taggers``, default ``<output_root>/taggers``."""
        return self._taggers_dir

    def taggers(self) -> list[Tagger]:
        from ..datasets.taggers import WD14Tagger

        return [WD14Tagger(folder) for folder in find_wd14_folders(self._taggers_dir)]

    def preview_renderer(self) -> PreviewRenderer:
        """The host's one renderer (made on first use)."""
        with self._renderer_lock:
            if self._renderer is None:
                self._renderer = _own_renderer()
            return self._renderer

    def clear_preview_staging(self) -> int:
        return 0  # previews are drawn from the run's own files: nothing is staged anywhere

    def settings(self) -> HostSettings:
        return self._settings

    def before_training(self) -> None:
        """Free the preview model (waits for an image being rendered to finish)."""
        if self._renderer is not None:
            self._renderer.release()

    def after_training(self) -> None:
        return None

    def python_executable(self) -> str:
        return sys.executable

    def lora_published(self, path: Path) -> None:
        return None  # nothing lists LoRAs here


def _own_renderer() -> PreviewRenderer:
    """Our own sampler (torch and the models load only now: the first preview asks for them)."""
    import torch

    from ..results.own_renderer import OwnSamplerRenderer

    return OwnSamplerRenderer(device="cuda" if torch.cuda.is_available() else "cpu")


def scan_checkpoints(folder: Path) -> list[CheckpointChoice]:
    """Checkpoint files under ``folder`` (any depth, symlinks followed), sorted by title."""
    if not folder.is_dir():
        return []
    found = []
    for current, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.lower().endswith(CHECKPOINT_SUFFIXES) and not name.startswith("."):
                path = Path(current) / name
                found.append(CheckpointChoice(path.relative_to(folder).as_posix(), path))
    return sorted(found, key=lambda c: c.title.casefold())

