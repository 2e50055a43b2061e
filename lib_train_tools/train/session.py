"""Turning a validated config into everything the loop needs: models, data, network, optimizer.

``build_session`` resolves what the config leaves open (device, dtypes, seed, resolution, clip
skip), loads the base checkpoint, scans the dataset, creates the LoRA network, the optimizer and
the LR schedule, and fills the latent / text caches. The result is one ``Session`` object; the
loop reads it and never the raw config.
"""

from __future__ import annotations

import functools
import gc
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .. import torch_compat
from ..models import fp8_weights
from ..models.loader import StableDiffusionModels, load_architecture, load_checkpoint
from ..network.adapters import AdapterError, AdapterSpec, adapter_spec, check_same_kind
from ..network.blocks import BLOCK_OPTION_NAMES, BlockError, BlockOptions
from ..network.network import LoRANetwork, create_network, create_network_from_weights
from ..network.param_groups import LoRAPlus
from . import frozen_conv
from .config import ConfigError, parse_kv_args, parse_resolution
from .config_checks import device_problems
from .data import BucketSpec, CaptionOptions, DataOptions, LatentCache, StepPlan, TextEncoderCache, TrainingDataset
from .distributed import DistContext
from .latent_moments import LatentMoments
from .lr_schedules import make_scheduler
from .optimizers import make_optimizer, optimizer_description, optimizer_notes
from .step import StepSettings, encode_text, make_tokenizers
from .train_config import TrainConfig

DEFAULT_RESOLUTION = {"sd1": 512, "sd2": 512, "sdxl": 1024}
DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
Log = Callable[[str], None]


@dataclass
class Session:
    cfg: TrainConfig
    models: StableDiffusionModels
    dataset: TrainingDataset
    plan: StepPlan
    network: LoRANetwork
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    settings: StepSettings
    device: torch.device
    weight_dtype: torch.dtype
    seed: int
    dist: DistContext
    tokenizers: list = field(default_factory=list)
    latent_cache: LatentCache | None = None
    text_cache: TextEncoderCache | None = None
    optimizer_desc: str = ""
    resolution: tuple[int, int] = (512, 512)
    base_model_hashes: tuple[str, str] | None = None
    latent_moments: LatentMoments | None = None
    scaler: Any = None  # torch_compat.grad_scaler(...) for fp16 on CUDA
    started_at: float = field(default_factory=time.time)
    last_saved_file: Path | None = None  # the newest LoRA file this run wrote (all its tensors finite)
    session_id: int = field(default_factory=lambda: random.randrange(2**32))

    @property
    def output_name(self) -> str:
        return self.cfg.output_name or "last"

    @property
    def output_dir(self) -> Path:
        assert self.cfg.output_dir is not None  # a required option (config_checks)
        return Path(self.cfg.output_dir)

    @property
    def train_text_encoder(self) -> bool:
        return self.network.config.train_text_encoder


def resolve_device(cfg: TrainConfig) -> torch.device:
    if cfg.device:
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_weight_dtype(cfg: TrainConfig, device: torch.device, log: Log) -> torch.dtype:
    dtype = DTYPES[cfg.mixed_precision]
    if device.type == "cpu" and dtype == torch.float16:
        log("mixed_precision fp16 is not supported on the CPU; training in float32")
        return torch.float32
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch_compat.bf16_hardware(device):
        major, minor = torch.cuda.get_device_capability(device)
        log(f"mixed_precision bf16: this GPU (compute capability {major}.{minor}) has no native bfloat16, "
            "which would be emulated many times slower; training in fp16 with a gradient scaler instead")
        return torch.float16
    return dtype


def build_session(cfg: TrainConfig, dist: DistContext, log: Log) -> Session:
    device = dist.device or resolve_device(cfg)
    problems = device_problems(cfg, device.type)
    if problems:
        raise ConfigError(problems)
    weight_dtype = resolve_weight_dtype(cfg, device, log)
    seed = cfg.seed if cfg.seed is not None else random.randrange(2**31)
    path = cfg.pretrained_model_name_or_path
    assert path is not None  # a required option (config_checks)
    family = load_architecture(path).family
    resolution = _resolution(cfg, family)
    dataset = TrainingDataset.from_folders(_data_options(cfg, resolution, seed))
    plan = dataset.plan_steps(dist.world_size, cfg.gradient_accumulation_steps, cfg.max_train_epochs,
                              None if cfg.max_train_epochs else cfg.max_train_steps)
    log(dataset.describe_steps(plan))
    images = ImageEncoding(family, device, weight_dtype, seed)
    models = _load_models(cfg, dataset, images, dist, log)
    _store_base_fp8(cfg, models, log)  # before the network hooks the layers: it wraps their upcasting forward
    torch.manual_seed(seed)  # LoRA down-projections are initialised from the global generator
    network = _make_network(cfg, models, log)
    if device.type == "cpu":
        assert models.unet is not None  # _load_models always loads the U-Net
        frozen_conv.install(models.unet)
    network_dtype = _set_network_precision(cfg, network, weight_dtype, log)
    optimizer, optimizer_desc = _make_optimizer(cfg, network, log)
    scheduler = make_scheduler(optimizer, cfg.lr_scheduler, plan.total_steps, cfg.lr_warmup_steps,
                               cfg.lr_scheduler_num_cycles, cfg.lr_scheduler_power)
    settings = _step_settings(cfg, models, log)
    session = Session(cfg, models, dataset, plan, network, optimizer, scheduler, settings, device, weight_dtype,
                      seed, dist, make_tokenizers(models), optimizer_desc=optimizer_desc, resolution=resolution,
                      latent_cache=images.cache, latent_moments=images.moments)
    if weight_dtype == torch.float16 and device.type == "cuda":
        session.scaler = torch_compat.grad_scaler(device, fp16_gradients=network_dtype == torch.float16)
    _fill_text_cache(session, log)
    return session


def _store_base_fp8(cfg: TrainConfig, models: StableDiffusionModels, log: Log) -> None:
    """fp8_base: the frozen U-Net and text-encoder weights as float8 (fp8_base_unet: the U-Net's only)."""
    if not (cfg.fp8_base or cfg.fp8_base_unet):
        return
    assert models.unet is not None  # _load_models always loads the U-Net
    parts: list[tuple[str, torch.nn.Module]] = [("U-Net", models.unet)]
    if not cfg.fp8_base_unet:
        parts += [(f"text encoder {i + 1}", te) for i, te in enumerate(models.text_encoders)]
    stored = []
    for label, model in parts:
        layers = fp8_weights.store_fp8(model)
        stored.append(f"{label} {layers} layers ({fp8_weights.fp8_weight_bytes(model) / 2**20:.1f} MiB)")
    log(f"base weights stored as float8_e4m3fn, computed in the mixed precision: {', '.join(stored)}")


def _set_network_precision(cfg: TrainConfig, network: LoRANetwork, weight_dtype: torch.dtype,
                           log: Log) -> torch.dtype:
    """full_fp16 / full_bf16: the LoRA parameters (so their gradients and the optimizer state) in the
    working precision; returns the dtype they train in. Buffers (alpha) stay float32, so the scale
    alpha / rank is exact; the file is written in save_precision either way."""
    wanted = torch.float16 if cfg.full_fp16 else torch.bfloat16 if cfg.full_bf16 else torch.float32
    if wanted == torch.float32:
        return wanted
    if wanted != weight_dtype:  # full_bf16 where bf16 fell back to fp16 (resolve_weight_dtype said why)
        log(f"{'full_fp16' if cfg.full_fp16 else 'full_bf16'} is off: the base model runs in {weight_dtype}, "
            "so the LoRA weights stay float32")
        return torch.float32
    for param in network.parameters():
        param.data = param.data.to(wanted)
    log(f"LoRA weights, gradients and optimizer state in {wanted} ({'full_fp16' if cfg.full_fp16 else 'full_bf16'})")
    return wanted


def vae_needed_only_up_front(cfg: TrainConfig) -> bool:
    """True when the VAE serves only to encode the training images before the first step.

    Sample images need its decoder, and a random crop makes new pixels (so new latents) every step;
    otherwise every latent is cached, or every VAE posterior remembered, before training.
    """
    return not cfg.sample_prompts and not cfg.random_crop


def _load_models(cfg: TrainConfig, dataset: TrainingDataset, images: ImageEncoding, dist: DistContext,
                 log: Log) -> StableDiffusionModels:
    """Load the base model and encode the training images.

    When the VAE serves only to encode the images up front, it is loaded alone, used and let go
    before the U-Net and text encoders are loaded, so it never adds to the peak memory of training.
    """
    path = cfg.pretrained_model_name_or_path
    assert path is not None  # a required option (config_checks)
    load = functools.partial(load_checkpoint, path, dtype=images.dtype, device=images.device)
    if not vae_needed_only_up_front(cfg):
        models = load(v_prediction=cfg.v_parameterization, zero_terminal_snr=cfg.zero_terminal_snr)
        _log_base_model(models, log, "")
        _encode_images(cfg, dataset, images, models.vae, dist, log)
        return models
    vae = load(parts=("vae",)).vae
    assert vae is not None  # the one part asked for
    if images.device.type == "cpu":  # oneDNN encodes ~10% faster with channels-last weights
        # Module.to(memory_format=...) works but is missing from torch's overloads of to().
        vae.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    _encode_images(cfg, dataset, images, vae, dist, log)
    del vae
    gc.collect()
    models = load(v_prediction=cfg.v_parameterization, zero_terminal_snr=cfg.zero_terminal_snr,
                  parts=("unet", "text_encoders"))
    _log_base_model(models, log, "; the VAE was used up front and released")
    return models


def _log_base_model(models: StableDiffusionModels, log: Log, note: str) -> None:
    log(f"base model: {models.architecture.describe()}; prediction: {models.prediction.name} "
        f"({models.prediction.reason}){note}")


@dataclass
class ImageEncoding:
    """Where the training latents come from: a latent cache, remembered VAE posteriors, or neither."""

    family: str
    device: torch.device
    dtype: torch.dtype
    seed: int
    cache: LatentCache | None = None
    moments: LatentMoments | None = None


def _resolution(cfg: TrainConfig, family: str) -> tuple[int, int]:
    if cfg.resolution:
        return parse_resolution(cfg.resolution)
    side = DEFAULT_RESOLUTION[family]
    return side, side


def _data_options(cfg: TrainConfig, resolution: tuple[int, int], seed: int) -> DataOptions:
    buckets = BucketSpec(resolution=resolution, enabled=cfg.enable_bucket, min_size=cfg.min_bucket_reso,
                         max_size=cfg.max_bucket_reso, step=cfg.bucket_reso_steps, no_upscale=cfg.bucket_no_upscale)
    captions = CaptionOptions(
        prefix=cfg.caption_prefix or "", suffix=cfg.caption_suffix or "", shuffle=cfg.shuffle_caption,
        keep_tokens=cfg.keep_tokens, keep_tokens_separator=cfg.keep_tokens_separator,
        dropout_rate=cfg.caption_dropout_rate, tag_dropout_rate=cfg.caption_tag_dropout_rate,
        dropout_every_n_epochs=cfg.caption_dropout_every_n_epochs)
    extensions = tuple(dict.fromkeys([cfg.caption_extension, ".txt", ".caption"]))
    assert cfg.train_data_dir is not None  # required (config_checks); the cli refuses dataset_config
    return DataOptions(train_dir=Path(cfg.train_data_dir), reg_dir=Path(cfg.reg_data_dir) if cfg.reg_data_dir else None,
                       caption_extensions=extensions, batch_size=cfg.train_batch_size, seed=seed, buckets=buckets,
                       captions=captions, flip_aug=cfg.flip_aug, random_crop=cfg.random_crop,
                       prior_loss_weight=cfg.prior_loss_weight, validation_split=cfg.validation_split,
                       validation_seed=cfg.validation_seed,
                       masked_loss=cfg.masked_loss or cfg.alpha_mask)  # alpha_mask implies it (data/masks.py)


def _make_network(cfg: TrainConfig, models: StableDiffusionModels, log: Log) -> LoRANetwork:
    options: dict[str, Any] = dict(
        dropout=cfg.network_dropout or 0.0, rank_dropout=cfg.rank_dropout or 0.0,
        module_dropout=cfg.module_dropout or 0.0, train_unet=not cfg.network_train_text_encoder_only,
        train_text_encoder=not cfg.network_train_unet_only,
        blocks=BlockOptions(**{name: getattr(cfg, name) for name in BLOCK_OPTION_NAMES}))
    try:
        adapter = adapter_spec(cfg.network_module, cfg.algo, cfg.dora_wd, cfg.factor, cfg.full_matrix,
                               cfg.decompose_both)
        if cfg.network_weights:  # continue training: ranks and alphas (and the module kind) come from the file
            network = create_network_from_weights(models.unet, models.text_encoders, models.family,
                                                  cfg.network_weights, **options)
            check_same_kind(adapter, network.config.adapter, cfg.network_weights)
            log(f"continuing from {cfg.network_weights}")
        else:
            network = create_network(models.unet, models.text_encoders, models.family, network_dim=cfg.network_dim,
                                     network_alpha=cfg.network_alpha, conv_dim=cfg.conv_dim,
                                     conv_alpha=cfg.conv_alpha, adapter=adapter, **options)
    except (BlockError, AdapterError) as exc:  # block lists that do not fit this model; LyCORIS options that clash
        raise ConfigError([str(exc)]) from None
    if network.config.adapter != AdapterSpec():
        log(f"network kind: {network.config.adapter.describe()} ({cfg.network_module})")
    for note in network.blocks.notes if network.blocks else ():
        log(note)
    network.apply()
    assert models.unet is not None  # _load_models always loads the U-Net
    network.to(next(models.unet.parameters()).device)
    counts = ", ".join(f"{k} {v}" for k, v in network.module_counts().items())
    log(f"LoRA modules: {counts}")
    if cfg.gradient_checkpointing:
        models.unet.gradient_checkpointing = True
        for te in models.text_encoders:
            te.gradient_checkpointing = True
    return network


def _make_optimizer(cfg: TrainConfig, network: LoRANetwork, log: Log) -> tuple[torch.optim.Optimizer, str]:
    args = parse_kv_args(cfg.optimizer_args, "optimizer_args")
    for note in optimizer_notes(cfg.optimizer_type, cfg.learning_rate, args):
        log(note)
    loraplus = LoRAPlus(cfg.loraplus_lr_ratio, cfg.loraplus_unet_lr_ratio, cfg.loraplus_text_encoder_lr_ratio)
    groups = network.param_groups(cfg.unet_lr, cfg.text_encoder_lr, cfg.learning_rate, loraplus)
    optimizer = make_optimizer(cfg.optimizer_type, groups, cfg.learning_rate, args)
    return optimizer, optimizer_description(optimizer, args)


def _step_settings(cfg: TrainConfig, models: StableDiffusionModels, log: Log) -> StepSettings:
    clip_skip = cfg.clip_skip or 1
    if models.family == "sdxl" and cfg.clip_skip and cfg.clip_skip > 1:
        log("clip_skip is ignored for SDXL (it always uses its fixed penultimate layers)")
        clip_skip = 1
    if models.zero_terminal_snr and not models.v_prediction:
        log("zero terminal SNR with epsilon prediction: the last timestep has no signal, so the noise "
            "target there is unlearnable; zero_terminal_snr is meant for v-prediction models")
    return StepSettings(
        family=models.family, v_prediction=models.v_prediction, clip_skip=clip_skip,
        token_windows=(cfg.max_token_length or 75) // 75, noise_offset=cfg.noise_offset or 0.0,
        noise_offset_random_strength=cfg.noise_offset_random_strength,
        multires_iterations=cfg.multires_noise_iterations or 0, multires_discount=cfg.multires_noise_discount,
        min_snr_gamma=cfg.min_snr_gamma, min_timestep=cfg.min_timestep or 0,
        max_timestep=cfg.max_timestep if cfg.max_timestep is not None else 1000,
        zero_terminal_snr=models.zero_terminal_snr, ip_noise_gamma=cfg.ip_noise_gamma or 0.0,
        ip_noise_gamma_random_strength=cfg.ip_noise_gamma_random_strength,
        debiased_estimation=cfg.debiased_estimation_loss, loss_type=cfg.loss_type,
        huber_schedule=cfg.huber_schedule, huber_c=cfg.huber_c, huber_scale=cfg.huber_scale)


def _encode_images(cfg: TrainConfig, dataset: TrainingDataset, images: ImageEncoding, vae: Any, dist: DistContext,
                   log: Log) -> None:
    """Fill the latent cache (cache_latents) or remember every VAE posterior (no random crop)."""
    if cfg.cache_latents or cfg.cache_latents_to_disk:
        generator = torch.Generator(images.device).manual_seed(images.seed)

        def encode(pixels: torch.Tensor) -> torch.Tensor:
            return vae.encode_latents(pixels.to(images.device, images.dtype), generator=generator).float()

        assert cfg.pretrained_model_name_or_path is not None  # a required option (config_checks)
        vae_id = f"{Path(cfg.pretrained_model_name_or_path).name}:{images.family}:scaled"
        images.cache = LatentCache(encode, vae_id, to_disk=cfg.cache_latents_to_disk)
        encoded = images.cache.fill(dataset.latent_jobs(), dist.rank, dist.world_size)
        images.cache.forget_encoder()  # every latent is in memory or on disk now; let the VAE go
        dist.barrier()
        log(f"latents cached: {encoded} images encoded")
    elif not cfg.random_crop:
        images.moments = LatentMoments(vae.config.scaling_factor)
        encoded = images.moments.fill(vae, dataset.latent_jobs(), images.dtype, images.device)
        log(f"VAE posteriors computed: {encoded} images encoded")


def _fill_text_cache(s: Session, log: Log) -> None:
    """Cache the text-encoder outputs when asked (encoders not trained); release the encoders if unused."""
    if not (s.cfg.cache_text_encoder_outputs and not s.train_text_encoder):
        return

    def encode_captions(captions) -> dict[str, torch.Tensor]:
        context, pooled = encode_text(s.models, s.tokenizers, list(captions), s.settings, s.device)
        return {"context": context} if pooled is None else {"context": context, "pooled": pooled}

    s.text_cache = TextEncoderCache(encode_captions)
    s.text_cache.fill(s.dataset.text_cache_captions())
    log(f"text-encoder outputs cached: {len(s.text_cache)} captions")
    if not s.cfg.sample_prompts:  # sample images would need them
        s.models.text_encoders = []
        gc.collect()
        log("text encoders released (their outputs are cached)")
