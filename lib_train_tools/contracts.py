"""The contracts between Train Tools and the program that hosts it (the bottom layer).

A host answers where things live (the output root, the LoRA folder, the base checkpoints), lends
its taggers and its way of rendering preview images, and frees its own model while a training
job runs. The UI, the HTTP API and the job service talk to a host only through ``Host``; preview
grids are drawn through a ``PreviewRenderer``; auto-tagging runs a ``Tagger``.

Every module of the package may import this one; it imports nothing of ours (and neither PIL nor
torch at run time), so a contract never drags an implementation in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # only for type hints: importing PIL here would load it for every importer
    from PIL import Image

TAGGERS_FOLDER = "taggers"  # <output_root>/taggers/<name>/: the standalone default and where older versions downloaded
_WD14_MARKERS = ("model.onnx", "selected_tags.csv")


# ----- the host -----
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


# ----- taggers -----
@dataclass(frozen=True)
class Availability:
    """Whether a tagger can run here; if not, why (``reason``) and what to do (``install_hint``)."""

    available: bool
    reason: str = ""
    install_hint: str = ""


class Tagger(Protocol):
    """Tags one image: a list of tags (or one sentence, for a captioner such as BLIP)."""

    name: str

    def availability(self) -> Availability:
        """Whether it can run, checked without loading a model."""
        ...

    def tag(self, image: Image.Image) -> list[str]:
        """The image's tags, most confident first."""
        ...

    def with_threshold(self, threshold: float) -> Tagger:
        """This tagger keeping tags scored at least ``threshold`` (0..1); a tagger without scores
        returns itself unchanged."""
        ...


def find_wd14_folders(folder: Path) -> list[Path]:
    """``folder`` itself and its subfolders that hold a WD14 model file, sorted by name."""
    if not folder.is_dir():
        return []
    candidates = [folder] + sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [p for p in candidates if any((p / marker).is_file() for marker in _WD14_MARKERS)]


# ----- preview images -----
class PreviewCell(Protocol):
    """One preview image to draw (``results.preview.CellRequest`` is the implementation):
    ``base_model`` with the LoRA at ``lora_path`` (None: no LoRA) at ``weight``."""

    @property
    def base_model(self) -> Path: ...

    @property
    def lora_path(self) -> Path | None: ...

    @property
    def weight(self) -> float: ...

    @property
    def prompt(self) -> str: ...

    @property
    def negative_prompt(self) -> str: ...

    @property
    def sampler(self) -> str: ...

    @property
    def steps(self) -> int: ...

    @property
    def cfg_scale(self) -> float: ...

    @property
    def seed(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def clip_skip(self) -> int | None:
        """None: 1 (the model's last layer)."""
        ...


class PreviewRenderer(Protocol):
    """Renders one preview image: a base model with one LoRA file at one weight."""

    def render(self, request: PreviewCell) -> Image.Image:
        ...

    def release(self) -> None:
        """Free a model kept between renders (before training, or after a preview during one);
        a renderer that keeps nothing does nothing."""
        ...

    def close(self) -> None:
        """Remove what rendering left behind (the WebUI's staged LoRA copies); a renderer that
        leaves nothing behind does nothing."""
        ...


class Host(Protocol):
    name: str  # "standalone", "a1111" or "forge"

    def output_root(self) -> Path:
        """Folder holding ``projects/`` and ``jobs/`` (the WebUI's ``outputs/train_tools``)."""
        ...

    def lora_dir(self) -> Path:
        """Folder that Publish copies LoRA files into (the WebUI's ``models/Lora``)."""
        ...

    def checkpoints(self) -> list[CheckpointChoice]:
        """Base checkpoints to train on, sorted by title."""
        ...

    def taggers(self) -> list[Tagger]:
        """Taggers the host lends (the WebUI's BLIP and DeepDanbooru), besides WD14 folders."""
        ...

    def preview_renderer(self) -> PreviewRenderer:
        """How preview images are made (our own sampler, or the WebUI's txt2img)."""
        ...

    def clear_preview_staging(self) -> int:
        """Remove what previews staged outside our folders (the WebUI's preview LoRA copies), at
        start-up and when the extension unloads; returns how many files went (0: nothing to do)."""
        ...

    def settings(self) -> HostSettings:
        """The current host settings (read again each time: the user may change them)."""
        ...

    def before_training(self) -> None:
        """Called before a training job starts (the WebUI unloads its model here)."""
        ...

    def after_training(self) -> None:
        """Called after a training job ends, however it ended (the WebUI reloads its model)."""
        ...

    def python_executable(self) -> str:
        """The interpreter that runs the trainer subprocess."""
        ...

    def lora_published(self, path: Path) -> None:
        """A LoRA file was published into ``lora_dir()`` (the WebUI refreshes its Lora list)."""
        ...
