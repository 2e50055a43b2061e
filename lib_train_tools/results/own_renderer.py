"""Preview images with our own models and sampler (the standalone app's ``PreviewRenderer``).

The base checkpoint is loaded once and kept until another one is asked for (or ``release()``); the
LoRA network of the last file is kept too, so a row of weights builds it once. For each cell the
network's multiplier is set to the cell's weight, its adapters are applied, the image is sampled
with ``train.sample_images.generate_sample`` and the adapters are removed again, even when sampling
fails: the cached base model never keeps a LoRA between cells. At weight 0 an adapter adds nothing,
so that cell is the base model's image, pixel for pixel. A LoRA file of this trainer records the
parameterisation its run trained with (``ss_v_parameterization``, ``ss_zero_terminal_snr``); its
cells are sampled the same way, so the grid matches the run's samples. Other files (and the base
alone) follow the base model's detection.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Callable, Iterator

import torch
from PIL import Image

from ..contracts import PreviewCell
from ..models.loader import StableDiffusionModels, load_checkpoint
from ..network.lora_file import read_lora
from ..network.network import LoRANetwork, create_network_from_weights
from ..train.sample_images import generate_sample
from ..train.sample_prompts import SamplePrompt
from .lora_info import LoraInfoError, read_metadata

FileKey = tuple[str, int, int]   # resolved path, mtime (ns), size: a rewritten file is read again


class OwnSamplerRenderer:
    """Renders ``CellRequest``s on ``device`` in ``dtype``; one render at a time (a lock)."""

    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 token_windows: int = 1,
                 loader: Callable[..., StableDiffusionModels] = load_checkpoint) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.token_windows = token_windows
        self._loader = loader
        self._lock = threading.Lock()
        self._base: tuple[FileKey, StableDiffusionModels] | None = None
        self._network: tuple[FileKey, FileKey, LoRANetwork] | None = None

    def render(self, request: PreviewCell) -> Image.Image:
        """The image of one cell; the base model is unchanged afterwards."""
        prompt = SamplePrompt(request.prompt, request.negative_prompt, request.width, request.height,
                              request.seed, request.steps, request.cfg_scale, request.sampler)
        with self._lock:
            models = self._base_models(Path(request.base_model))
            v_prediction, zero_terminal_snr = trained_prediction(request.lora_path)
            with self._lora_applied(models, request.lora_path, request.weight):
                return generate_sample(models, prompt, request.sampler, self.device, self.dtype,
                                       request.clip_skip or 1, self.token_windows, v_prediction=v_prediction,
                                       zero_terminal_snr=zero_terminal_snr)

    def release(self) -> None:
        """Drop the cached base model and network (call before training to free memory)."""
        with self._lock:
            self._network = None
            self._base = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def close(self) -> None:
        """Nothing is held but memory, which ``release`` frees."""
        self.release()

    @property
    def cached_base(self) -> Path | None:
        """The base checkpoint held in memory, if any."""
        return Path(self._base[0][0]) if self._base else None

    def _base_models(self, path: Path) -> StableDiffusionModels:
        key = _file_key(path)
        if self._base is None or self._base[0] != key:
            self._network = None
            self._base = None   # free the old model before loading the next
            self._base = (key, self._loader(path, dtype=self.dtype, device=self.device))
        return self._base[1]

    @contextlib.contextmanager
    def _lora_applied(self, models: StableDiffusionModels, lora_path: Path | None, weight: float) -> Iterator[None]:
        if lora_path is None:
            yield
            return
        network = self._lora_network(models, Path(lora_path))
        network.set_multiplier(float(weight))
        network.apply()
        try:
            yield
        finally:
            network.remove()

    def _lora_network(self, models: StableDiffusionModels, path: Path) -> LoRANetwork:
        assert self._base is not None  # _base_models loaded it for this render
        base_key, key = self._base[0], _file_key(path)
        if self._network is None or self._network[:2] != (base_key, key):
            self._network = None
            self._network = (base_key, key, build_network(models, path))
        return self._network[2]


def trained_prediction(lora_path: Path | None) -> tuple[bool | None, bool | None]:
    """(v-prediction, zero terminal SNR) as the LoRA's metadata records its training run, or
    (None, None) where it does not: no file, not a .safetensors, or written by another trainer
    (sd-scripts records no ``ss_v_parameterization``, and its ``ss_zero_terminal_snr`` says only
    whether the option was given)."""
    if lora_path is None or Path(lora_path).suffix.lower() != ".safetensors":
        return None, None
    try:
        metadata = read_metadata(lora_path)
    except LoraInfoError:
        return None, None
    if metadata.get("ss_v_parameterization") not in ("True", "False"):
        return None, None
    return metadata["ss_v_parameterization"] == "True", metadata.get("ss_zero_terminal_snr") == "True"


def build_network(models: StableDiffusionModels, path: Path) -> LoRANetwork:
    """Our LoRA network over ``models`` with the weights of ``path`` (not applied yet).

    Only the parts the file has adapters for get modules. Adapters for layers the file lacks start
    with zero ``lora_up`` (they add nothing); their random ``lora_down`` init must not move the
    caller's random state, so it runs on a forked RNG.
    """
    tensors, _ = read_lora(path)
    has_te = any(k.startswith("lora_te") for k in tensors)
    has_unet = any(k.startswith("lora_unet") for k in tensors)
    with _forked_rng(models):
        network = create_network_from_weights(models.unet, models.text_encoders, models.family, tensors,
                                              train_unet=has_unet, train_text_encoder=has_te)
    return network.eval().requires_grad_(False)


@contextlib.contextmanager
def _forked_rng(models: StableDiffusionModels) -> Iterator[None]:
    assert models.unet is not None  # the renderer loads whole checkpoints
    device = next(models.unet.parameters()).device
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        yield


def _file_key(path: Path) -> FileKey:
    stat = os.stat(path)
    return str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size
