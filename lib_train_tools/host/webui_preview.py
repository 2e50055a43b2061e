"""Preview images drawn by the WebUI's own txt2img, so a preview shows what the user will get.

One cell = one ``processing.StableDiffusionProcessingTxt2Img`` run through ``process_images``
under the WebUI's queue lock: the run's base checkpoint is chosen with ``override_settings``
(``sd_model_checkpoint``; the option goes back afterwards and the user's checkpoint is loaded
again by the next ordinary generation), the LoRA goes into the prompt as ``<lora:NAME:weight>``
where NAME is the file staged under a unique name in the Lora folder (``lora_staging.py``; a
hard link, removed again as soon as the image is drawn), and clip skip as
``CLIP_stop_at_last_layers``. Nothing is saved to the WebUI's outputs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Optional

from ..contracts import PreviewCell
from .lora_staging import PREVIEW_FOLDER, LoraStaging
from .webui_modules import call_queue, processing, sd_models, shared


class WebUIPreviewError(RuntimeError):
    """A cell cannot be drawn by the WebUI; the message says why."""


def checkpoint_alias(base_model: Path) -> str:
    """The name the WebUI knows the checkpoint file ``base_model`` by (its ``name``)."""
    wanted = _resolved(base_model)
    for info in list(sd_models.checkpoints_list.values()):
        if _resolved(Path(info.filename)) == wanted:
            return info.name
    raise WebUIPreviewError(
        f"the run's base model {base_model} is not in the WebUI's checkpoint list: put it in the "
        "Stable-diffusion models folder (or --ckpt-dir) and refresh the checkpoint list")


def webui_sampler_name(name: str) -> str:
    """Our sampler names ("euler_a", "ddim", ...) as the WebUI's; a WebUI name passes through."""
    from ..train.sampling import SAMPLERS

    spec = SAMPLERS.get(name.strip().lower())
    return spec.display_name if spec is not None else name


def lora_prompt(prompt: str, lora_name: str | None, weight: float) -> str:
    return f"{prompt} <lora:{lora_name}:{weight:g}>" if lora_name else prompt


class WebUIPreviewRenderer:
    """``render(CellRequest) -> PIL.Image`` through the WebUI (see the module docstring).

    ``prepare_model`` runs before each cell (the host puts back a model it moved out for a training
    job: A1111 cannot generate with it on the CPU). ``close()`` removes staged LoRA copies that are
    still there; call it when a preview grid is done. ``release()`` (called while a training job
    runs) hands VRAM back to the trainer when the host's unload setting says so.
    """

    def __init__(self, lora_dir: Path, prepare_model: Optional[Callable[[], None]] = None,
                 release_model: Optional[Callable[[], None]] = None):
        self.staging = LoraStaging(Path(lora_dir) / PREVIEW_FOLDER)
        self._prepare_model = prepare_model
        self._release_model = release_model

    def render(self, request: PreviewCell) -> Any:
        alias = checkpoint_alias(Path(request.base_model))
        if self._prepare_model is not None:
            self._prepare_model()
        name = self.staging.stage(Path(request.lora_path)) if request.lora_path is not None else None
        try:
            return self._draw(request, alias, name)
        finally:
            if name is not None:
                self.staging.unstage(name)

    def _draw(self, request: PreviewCell, alias: str, name: Optional[str]) -> Any:
        overrides: dict[str, Any] = {"sd_model_checkpoint": alias}
        if request.clip_skip:
            overrides["CLIP_stop_at_last_layers"] = int(request.clip_skip)
        p = processing.StableDiffusionProcessingTxt2Img(
            prompt=lora_prompt(request.prompt, name, request.weight), negative_prompt=request.negative_prompt,
            seed=int(request.seed), sampler_name=webui_sampler_name(request.sampler), steps=int(request.steps),
            cfg_scale=float(request.cfg_scale), width=int(request.width), height=int(request.height),
            batch_size=1, n_iter=1, do_not_save_samples=True, do_not_save_grid=True,
            override_settings=overrides, override_settings_restore_afterwards=True)
        with call_queue.queue_lock:
            shared.state.begin(job="train_tools_preview")
            try:
                with contextlib.closing(p):
                    processed = processing.process_images(p)
            finally:
                shared.state.end()
        if not processed.images:
            raise WebUIPreviewError(f"the WebUI returned no image for {p.prompt!r} (was it interrupted?)")
        return processed.images[0]

    def close(self) -> None:
        self.staging.clear()

    def release(self) -> None:
        if self._release_model is not None:
            self._release_model()


def _resolved(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except OSError:
        return path
