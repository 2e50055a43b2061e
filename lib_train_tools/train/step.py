"""One training step's maths, as named functions the loop calls in order.

``encode_batch`` turns a batch into latents and text conditioning; ``add_training_noise`` draws
timesteps and noise (with the configured noise variants) and noises the latents; ``predict`` runs
the U-Net; ``compute_loss`` builds the target (epsilon or v) and the weighted loss. Randomness
comes from a generator the caller seeds per step, so a resumed run draws the same numbers.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch

from ..models.text_conditioning import encode_sd, encode_sdxl
from ..models.tokenizer import PAD_TOKEN_BY_LAYOUT, ClipTokenizer
from ..models.unet import sdxl_size_embedding
from . import loss as losses
from . import noise_schedule as ns
from .data import TrainingBatch
from .latent_moments import LatentMoments, image_key


@dataclass(frozen=True)
class StepSettings:
    """The per-step options of the config, resolved once."""

    family: str
    v_prediction: bool
    clip_skip: int = 1
    token_windows: int = 1
    noise_offset: float = 0.0
    noise_offset_random_strength: bool = False
    multires_iterations: int = 0
    multires_discount: float = 0.3
    min_snr_gamma: float | None = None
    min_timestep: int = 0
    max_timestep: int = 1000
    zero_terminal_snr: bool = False
    ip_noise_gamma: float = 0.0
    ip_noise_gamma_random_strength: bool = False
    debiased_estimation: bool = False
    loss_type: str = "l2"
    huber_schedule: str = "snr"
    huber_c: float = losses.DEFAULT_HUBER_C
    huber_scale: float = 1.0

    @property
    def schedule(self) -> torch.Tensor:
        """alpha_bar_t of the run: rescaled to zero terminal SNR when the model asks for it."""
        return ns.training_alphas_cumprod(self.zero_terminal_snr)


@dataclass
class Conditioning:
    context: torch.Tensor
    y: torch.Tensor | None = None


def make_tokenizers(models) -> list[ClipTokenizer]:
    return [ClipTokenizer(PAD_TOKEN_BY_LAYOUT[slot.layout]) for slot in models.architecture.text_encoders]


def encode_text(models, tokenizers: list[ClipTokenizer], captions: list[str], settings: StepSettings,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Context (and SDXL's pooled vector) for ``captions``; gradients flow when the encoders train."""
    ids = [tok(list(captions), settings.token_windows).to(device) for tok in tokenizers]
    if settings.family != "sdxl":
        return encode_sd(models.text_encoders[0], ids[0], settings.clip_skip), None
    return encode_sdxl(models.text_encoders[0], models.text_encoders[1], ids[0], ids[1])


def encode_batch(models, tokenizers, batch: TrainingBatch, settings: StepSettings, device: torch.device,
                 dtype: torch.dtype, generator: torch.Generator,
                 moments: LatentMoments | None = None) -> tuple[torch.Tensor, Conditioning]:
    """Scaled latents and U-Net conditioning for one batch."""
    if batch.latents is not None:
        latents = batch.latents.to(device, torch.float32)
    else:
        assert batch.pixels is not None  # a batch has either latents or pixels
        if moments is not None:
            keys = [image_key(path, flip, pixels)
                    for path, flip, pixels in zip(batch.paths, batch.flipped, batch.pixels)]
            latents = moments.sample(models.vae, batch.pixels.to(device), keys, generator, dtype)
        else:
            with torch.no_grad():
                pixels = batch.pixels.to(device, dtype)
                latents = models.vae.encode_latents(pixels, generator=generator).float()
    if batch.text_outputs is not None:
        context, pooled = batch.text_outputs["context"].to(device), batch.text_outputs.get("pooled")
        pooled = pooled.to(device) if pooled is not None else None
    else:
        context, pooled = encode_text(models, tokenizers, list(batch.captions), settings, device)
    y = None
    if settings.family == "sdxl":
        assert pooled is not None  # SDXL's text encoders always give the pooled vector
        y = torch.cat([pooled.float(), sdxl_size_embedding(batch.time_ids.to(device)).float()], dim=1)
    return latents, Conditioning(context, y)


def add_training_noise(latents: torch.Tensor, settings: StepSettings,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy latents, noise, timesteps) with noise offset / multires noise as configured.

    The returned ``noise`` is what the target is built from; with input perturbation
    (``ip_noise_gamma``) the noisy latents carry extra noise that the target does not. Draws come
    in a fixed order (noise, offset, pyramid, timesteps, perturbation), each only when its option
    is on, so turning on a later option leaves the earlier draws as they were.
    """
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if settings.noise_offset:
        noise = ns.apply_noise_offset(noise, settings.noise_offset, generator, settings.noise_offset_random_strength)
    if settings.multires_iterations:
        noise = ns.multires_noise(noise, settings.multires_iterations, settings.multires_discount, generator)
    t = ns.sample_timesteps(latents.shape[0], settings.min_timestep, settings.max_timestep, generator,
                            device=latents.device)
    model_noise = noise
    if settings.ip_noise_gamma:
        model_noise = ns.input_perturbation(noise, settings.ip_noise_gamma, generator,
                                            settings.ip_noise_gamma_random_strength)
    return ns.add_noise(latents, model_noise, t, settings.schedule), noise, t


def unet_kernels(device: torch.device):
    """Context for the U-Net's forward and backward passes.

    On the CPU, oneDNN (mkldnn) convolutions re-pack the frozen weights on every call, which costs
    more than the convolution itself for the U-Net's wide 3x3 layers at small spatial sizes;
    PyTorch's own im2col + GEMM path measured 15-20% faster per training step for SD1.5 at
    128 px (benchmarks/bench_train.py). The VAE, with few wide layers at large sizes, keeps oneDNN.
    """
    if device.type == "cpu":
        # entering and leaving the flags context also sets oneDNN's TF32 switch, which makes CPU-only
        # torch builds warn about Intel GPUs on every step; that warning says nothing about training
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        return torch.backends.mkldnn.flags(enabled=False)
    return contextlib.nullcontext()


def predict(unet, noisy: torch.Tensor, t: torch.Tensor, cond: Conditioning, dtype: torch.dtype) -> torch.Tensor:
    return unet(noisy.to(dtype), t, cond.context.to(dtype), None if cond.y is None else cond.y.to(dtype))


def compute_loss(pred: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                 loss_weights: torch.Tensor, settings: StepSettings,
                 masks: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of the per-sample loss (``loss_type``), weighted by the prior-loss,
    Min-SNR and debiased-estimation weights; every SNR is read from the run's schedule. ``masks``
    (the batch's latent-size loss masks with ``masked_loss``) weigh the element-wise loss first."""
    table = settings.schedule
    target = ns.v_target(latents, noise, t, table) if settings.v_prediction else noise
    huber_c: float | torch.Tensor = settings.huber_c
    if settings.loss_type in losses.HUBER_KINDS:
        huber_c = losses.huber_c_per_timestep(t, settings.huber_schedule, settings.huber_c, settings.huber_scale,
                                              table)
    per_sample = losses.per_sample_loss(pred.float(), target.float(), settings.loss_type, huber_c, masks)
    weights = loss_weights.to(per_sample.device)
    if settings.min_snr_gamma:
        weights = weights * losses.min_snr_weight(t, settings.min_snr_gamma, settings.v_prediction, table)
    if settings.debiased_estimation:
        weights = weights * losses.debiased_estimation_weight(t, settings.v_prediction, table)
    return (per_sample * weights.to(per_sample.device)).mean()
