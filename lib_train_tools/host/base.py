"""The contract between Train Tools and the program that hosts it.

A host answers where things live (the output root, the LoRA folder, the base checkpoints), lends
its taggers and its way of rendering preview images, and frees its own model while a training
job runs. The UI, the HTTP API and the job service talk to a host only through this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # only for type hints: importing them would pull in torch and PIL
    from PIL import Image

    from ..datasets.taggers import Tagger


@dataclass(frozen=True)
class CheckpointChoice:
    """A base model the user can pick: ``title`` as the dropdown shows it, ``path`` on disk."""

    title: str
    path: Path


@dataclass(frozen=True)
class HostSettings:
    """Settings the host owns (the WebUI's settings section, the standalone app's flags)."""

    auto_publish: bool = True  # publish a finished run's final file as <project>-<version>
    unload_model_while_training: bool = False  # free the host's own model (VRAM) during training
    keep_last_n_checkpoints: int = 0  # 0 keeps every epoch file of a run


class PreviewRenderer(Protocol):
    """Renders one preview image: a base model with one LoRA file at one weight."""

    def render(self, request) -> "Image.Image":  # request: results.preview.CellRequest
        ...

    def release(self) -> None:
        """Free a model kept between renders (before training, or after a preview during one);
        a renderer that keeps nothing does nothing. Callers use ``getattr`` for older renderers."""
        ...


class Host(Protocol):
    name: str  # "standalone", "a1111" or "forge"

    def output_root(self) -> Path:
        """Folder holding ``projects/`` and ``jobs/`` (the WebUI's ``outputs/train_tools``)."""

    def lora_dir(self) -> Path:
        """Folder that Publish copies LoRA files into (the WebUI's ``models/Lora``)."""

    def checkpoints(self) -> list[CheckpointChoice]:
        """Base checkpoints to train on, sorted by title."""

    def taggers(self) -> list["Tagger"]:
        """Taggers the host lends (the WebUI's BLIP and DeepDanbooru), besides WD14 folders."""

    def preview_renderer(self) -> PreviewRenderer:
        """How preview images are made (our own sampler, or the WebUI's txt2img)."""

    def settings(self) -> HostSettings:
        """The current host settings (read again each time: the user may change them)."""

    def before_training(self) -> None:
        """Called before a training job starts (the WebUI unloads its model here)."""

    def after_training(self) -> None:
        """Called after a training job ends, however it ended (the WebUI reloads its model)."""

    def python_executable(self) -> str:
        """The interpreter that runs the trainer subprocess."""
