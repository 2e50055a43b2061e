"""Rendering one sample prompt into a PNG with our own models, and saving it with its settings.

``generate_sample`` tokenizes the prompt and the negative prompt, encodes both in one batch,
samples latents with classifier-free guidance, decodes them with the VAE and returns a PIL image.
All randomness (start noise, ancestral noise) comes from a CPU generator seeded with the prompt's
seed, so a seed gives the same image on any device and the training RNG is never touched.
The settings actually used (seed drawn, sampler chosen, size) are put in the image's ``info``
under ``parameters`` in the WebUI's infotext style; ``save_sample`` writes them into the PNG.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import torch
from PIL import Image, PngImagePlugin
from torch import nn

from ..atomic import atomic_path
from ..models.loader import StableDiffusionModels
from ..models.text_conditioning import encode_sd, encode_sdxl, sdxl_time_ids
from ..models.tokenizer import PAD_TOKEN_BY_LAYOUT, ClipTokenizer
from ..models.unet import UNetModel, sdxl_size_embedding
from ..models.vae import AutoencoderKL
from .noise_schedule import training_alphas_cumprod
from .sample_prompts import SamplePrompt
from .sampling import SAMPLERS, CFGDenoiser, DiscreteDenoiser, model_sigmas, resolve_sampler

INFOTEXT_KEY = "parameters"
_SEED_LIMIT = 2 ** 32


class SampleImageError(ValueError):
    """A model set or prompt that cannot produce a sample image."""


def resolve_prompt(prompt: SamplePrompt, default_sampler: str) -> tuple[SamplePrompt, str | None]:
    """The prompt with a concrete seed (random when unset) and one of our sampler names, plus a
    warning when the requested sampler is replaced."""
    name, warning = resolve_sampler(prompt.sampler or default_sampler)
    seed = prompt.seed if prompt.seed is not None else secrets.randbelow(_SEED_LIMIT)
    return replace(prompt, seed=seed, sampler=name), warning


def infotext(prompt: SamplePrompt) -> str:
    """The WebUI's generation-parameters text: prompt, negative line, then ``Key: value`` pairs."""
    sampler = SAMPLERS[prompt.sampler].display_name if prompt.sampler in SAMPLERS else (prompt.sampler or "")
    lines = [prompt.prompt]
    if prompt.negative_prompt:
        lines.append(f"Negative prompt: {prompt.negative_prompt}")
    settings = [f"Steps: {prompt.steps}", f"Sampler: {sampler}", f"CFG scale: {prompt.cfg_scale:g}"]
    if prompt.seed is not None:
        settings.append(f"Seed: {prompt.seed}")
    settings.append(f"Size: {prompt.width}x{prompt.height}")
    lines.append(", ".join(settings))
    return "\n".join(lines)


@torch.no_grad()
def generate_sample(models: StableDiffusionModels, prompt: SamplePrompt, sampler: str,
                    device: torch.device | str, dtype: torch.dtype, clip_skip: int = 1,
                    max_token_length_windows: int = 1, v_prediction: bool | None = None,
                    zero_terminal_snr: bool | None = None) -> Image.Image:
    """Render ``prompt`` (``sampler`` when the prompt names none). Models run in eval mode for the
    call and get their previous mode back. Any LoRA must already be applied by the caller.

    The model's parameterisation and schedule are ``models.prediction``'s unless ``v_prediction``
    / ``zero_terminal_snr`` say otherwise (a preview follows what the LoRA was trained with)."""
    unet, vae = models.unet, models.vae
    if unet is None or vae is None or not models.text_encoders:
        raise SampleImageError(f"{models.path}: sample images need the U-Net, the VAE and the text encoders loaded")
    prompt, _ = resolve_prompt(prompt, sampler)
    prompt = _fit_size(prompt, unet, vae)
    device = torch.device(device)
    with _eval_mode([unet, vae, *models.text_encoders]):
        cond, uncond = _conditioning(models, prompt, device, dtype, clip_skip, max_token_length_windows)
        v = models.v_prediction if v_prediction is None else v_prediction
        ztsnr = models.zero_terminal_snr if zero_terminal_snr is None else zero_terminal_snr
        latents = _sample_latents(unet, vae, prompt, cond, uncond, device, dtype, v, ztsnr)
        pixels = vae.decode_latents(latents.to(dtype))
    image = _to_pil(pixels[0])
    image.info[INFOTEXT_KEY] = infotext(prompt)
    return image


def save_sample(image: Image.Image, path: str | os.PathLike, prompt: SamplePrompt) -> Path:
    """Write ``image`` as a PNG whose ``parameters`` text holds the settings, atomically.

    The settings are the ones ``generate_sample`` recorded in ``image.info``; for an image made
    elsewhere they come from ``prompt``.
    """
    path = Path(path)
    text = image.info.get(INFOTEXT_KEY) or infotext(prompt)
    chunk = PngImagePlugin.PngInfo()
    chunk.add_text(INFOTEXT_KEY, text)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=chunk)
    return path


def _fit_size(prompt: SamplePrompt, unet: UNetModel, vae: AutoencoderKL) -> SamplePrompt:
    """Round the size down to what the U-Net can take: latent sides divisible by its downscale."""
    multiple = vae.config.downscale * unet.config.downscale
    width, height = (max(multiple, side - side % multiple) for side in (prompt.width, prompt.height))
    return replace(prompt, width=width, height=height)


def _conditioning(models: StableDiffusionModels, prompt: SamplePrompt, device: torch.device, dtype: torch.dtype,
                  clip_skip: int, windows: int) -> tuple[dict, dict]:
    """(cond, uncond) keyword tensors for the U-Net: ``context`` and, for SDXL, ``y``."""
    texts = [prompt.prompt, prompt.negative_prompt]
    ids = [ClipTokenizer(PAD_TOKEN_BY_LAYOUT[slot.layout])(texts, windows).to(device)
           for slot in models.architecture.text_encoders]
    if models.family != "sdxl":
        context = encode_sd(models.text_encoders[0], ids[0], clip_skip)
        y = None
    else:
        context, pooled = encode_sdxl(models.text_encoders[0], models.text_encoders[1], ids[0], ids[1])
        size = (prompt.height, prompt.width)
        time_ids = sdxl_time_ids(size, (0, 0), size).to(device).expand(2, 6)
        y = torch.cat([pooled.float(), sdxl_size_embedding(time_ids).float()], dim=1).to(dtype)
    context = context.to(dtype)
    return ({"context": context[:1], "y": None if y is None else y[:1]},
            {"context": context[1:], "y": None if y is None else y[1:]})


def _sample_latents(unet: UNetModel, vae: AutoencoderKL, prompt: SamplePrompt, cond: dict, uncond: dict,
                    device: torch.device, dtype: torch.dtype, v_prediction: bool,
                    zero_terminal_snr: bool) -> torch.Tensor:
    assert prompt.sampler is not None and prompt.seed is not None  # resolve_prompt fills both
    spec = SAMPLERS[prompt.sampler]
    table = model_sigmas(training_alphas_cumprod(zero_terminal_snr)).to(device)
    sigmas = spec.schedule(prompt.steps, table.cpu()).to(device)

    def model_fn(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, y: torch.Tensor | None = None):
        return unet(x.to(dtype), t, context, y)

    denoiser = CFGDenoiser(DiscreteDenoiser(model_fn, table, v_prediction))
    generator = torch.Generator(device="cpu").manual_seed(prompt.seed)
    scale = vae.config.downscale
    shape = (1, unet.config.in_channels, prompt.height // scale, prompt.width // scale)
    x = torch.randn(shape, generator=generator).to(device) * sigmas[0]
    extra = {"cond": cond, "uncond": uncond, "cond_scale": prompt.cfg_scale}
    return spec.sample(denoiser, x, sigmas, extra_args=extra, generator=generator)


def _to_pil(pixels: torch.Tensor) -> Image.Image:
    """[3, H, W] in [-1, 1] -> RGB image."""
    array = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), "RGB")


@contextlib.contextmanager
def _eval_mode(modules: list[nn.Module]) -> Iterator[None]:
    """Eval mode for the duration (dropout in a training LoRA must not touch the samples)."""
    previous = [m.training for m in modules]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, was_training in zip(modules, previous):
            module.train(was_training)
