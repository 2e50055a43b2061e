"""The VRAM a training run needs, computed by tracing one training step of the real model code.

`trace_training_step` builds the chosen checkpoint's U-Net, text encoders and VAE from its
detected ``Architecture`` on the meta device (shapes and dtypes, no memory, no weights read) in
the working dtype, applies the run's LoRA network (``network.create_network``: the same targets,
``network_dim``, ``conv_dim``, which parts train), turns on gradient checkpointing when asked and
runs the forward and backward passes as ``loop.optimizer_step`` does: text encoding (with
gradients when the encoders train), the VAE encode when images are encoded every step, noised
latents, ``step.predict`` (autocast around the U-Net only, as the loop does), ``step.compute_loss``
and ``backward()``. `memory_trace.LiveBytes` counts the bytes of every tensor alive at each
moment; `cuda_behaviour.CudaBehaviour` plays what only CUDA does (autocast, fused attention).

The optimizer is not stepped on meta tensors: torch's AdamW does run there, but its foreach
kernels fall back to Python reference implementations (about 3 s per step for SD1.5's LoRA,
longer than the whole forward and backward), and what it holds is known exactly. Its state
(`optimizer_state_bytes`, ``memory_estimate.OPTIMIZER_STATE_BYTES`` per trained parameter; a test
compares torch's AdamW and SGD) lives through the whole step, as in every step after the first;
the step's own moment (the gradients plus one float32 temporary per parameter,
`step_temporaries_bytes`) is a phase of its own, counted by formula, and only matters when the
activations are smaller than the gradients (tiny latents). Gradient clipping adds a few norms.

The result adds up (MiB):

* ``weights``: the frozen models kept on the card, in the working dtype as
  ``session.resolve_weight_dtype`` loads them (``TraceSettings.weight_dtype`` sets the U-Net's
  storage dtype: a 1-byte float8 dtype counts ``fp8_base``);
* ``lora``: the LoRA parameters (float32); ``optimizer_state``: see above;
* ``activations``: everything else alive at the peak: what the forward saved for backward, the
  gradients made so far, temporaries (``peak_phase`` says where the peak was);
* ``cuda_context``: ``memory_estimate.CUDA_CONTEXT_MB``, a constant (see there); nothing traces it.

What is not counted: kernels' private workspaces (cuDNN convolution algorithms may ask for more),
the caching allocator's rounding and fragmentation (``torch.cuda.memory_reserved`` above
``max_memory_allocated``), and other programs on the card.

Tracing costs CPU time, not memory, and the same for any batch size and resolution (meta tensors
hold no data, and their kernels are mostly Python): measured on the project's 2-core machine,
1.3-2.2 s for SD1.5/SD2 and 3.5-5.3 s for SDXL when it was quiet, 5 s and 11-19 s while other jobs
loaded it. So the tab never waits for it: `TRACES` (a `TraceCache`) traces on a background thread
and keeps the results per (architecture, settings).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import torch_compat
from ..models.checkpoint_factory import recipe
from ..models.clip import CLIPTextModel
from ..models.detect import Architecture, TextEncoderSlot
from ..models.text_conditioning import encode_sd, encode_sdxl
from ..models.unet import UNetModel, sdxl_size_embedding
from ..models.vae import AutoencoderKL
from ..network.network import create_network
from .cuda_behaviour import CudaBehaviour
from .memory_estimate import CUDA_CONTEXT_MB, OPTIMIZER_STATE_BYTES
from .memory_trace import MB, LiveBytes
from .step import Conditioning, StepSettings, compute_loss, predict

DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TOKENS = 77


@dataclass(frozen=True)
class TraceSettings:
    """The settings the traced step depends on (the cache key with the architecture).

    ``vae_on_card``: the VAE stays loaded during training (sample images or random crop need it);
    ``vae_each_step``: images are encoded every step (no cached latents, random crop); without it
    the U-Net gets stored latents. ``text_encoders_on_card``: False when their outputs are cached
    and they are released. ``weight_dtype`` / ``text_encoder_weight_dtype``: the storage dtype of
    the frozen U-Net / text-encoder weights (None: that of ``mixed_precision``); a float8 dtype
    counts ``fp8_base``'s 1 byte per weight (only the storage: the per-layer casts back to the
    working dtype are not traced)."""

    resolution: tuple[int, int] = (512, 512)
    batch_size: int = 1
    network_dim: int = 32
    conv_dim: int | None = None
    mixed_precision: str = "fp16"
    gradient_checkpointing: bool = False
    train_text_encoder: bool = True
    optimizer_type: str = "AdamW"
    vae_on_card: bool = True
    vae_each_step: bool = False
    text_encoders_on_card: bool = True
    weight_dtype: torch.dtype | None = None
    text_encoder_weight_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.mixed_precision not in DTYPES:
            raise ValueError(f"mixed_precision {self.mixed_precision!r} is not one of {', '.join(DTYPES)}")
        if self.batch_size < 1 or self.network_dim < 1 or (self.conv_dim is not None and self.conv_dim < 1):
            raise ValueError("batch_size, network_dim and conv_dim must be at least 1")
        if self.train_text_encoder and not self.text_encoders_on_card:
            raise ValueError("trained text encoders must be on the card")


@dataclass(frozen=True)
class TracedEstimate:
    """The traced peak in MiB and its parts (module docstring)."""

    total_mb: float
    parts: dict[str, float]
    peak_phase: str                # where the peak was: forward, backward or optimizer step
    seconds: float                 # time the trace took
    phase_peaks_mb: dict[str, float] = field(default_factory=dict)
    activation_bytes: int = 0      # the ``activations`` part, unrounded
    traced_bytes: int = 0          # the traced forward and backward passes' peak (no formula in it)

    @property
    def total_gb(self) -> float:
        return self.total_mb / 1024.0


def released_architecture(family: str) -> Architecture:
    """The released SD1.5 / SD2.1 / SDXL layout (the widths of ``checkpoint_factory``'s real recipes)."""
    r = recipe(family, "real")
    slots = tuple(TextEncoderSlot(p.prefix, p.layout, p.config, p.config.num_layers + p.extra_file_layers)
                  for p in r.text_encoders)
    return Architecture(family, r.unet, r.vae, slots)


def traced_vram(arch: Architecture, settings: TraceSettings) -> TracedEstimate:
    """The traced estimate for ``arch`` and ``settings`` on meta tensors (cached; see `TRACES`)."""
    return TRACES.get(arch, settings, wait=True)  # type: ignore[return-value]  # wait=True always answers


class TraceCache:
    """Traced estimates by (architecture, settings), made on one background thread.

    `get` answers from the cache; on a miss it queues the trace (only the newest request waits: a
    user changing settings quickly does not queue every intermediate state) and answers None, or
    traces right away with ``wait``. A trace that fails is remembered with its error (`error`)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._done: OrderedDict[tuple[Architecture, TraceSettings], TracedEstimate] = OrderedDict()
        self._errors: dict[tuple[Architecture, TraceSettings], str] = {}
        self._next: tuple[Architecture, TraceSettings] | None = None
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        atexit.register(self.shut_down)

    def shut_down(self) -> None:
        """Stop the background trace and wait for its thread (torch aborts the process when a
        thread is still running its operators as the interpreter exits)."""
        self._stop.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout=30)

    def get(self, arch: Architecture, settings: TraceSettings, wait: bool = False,
            patience: float = 0.0) -> TracedEstimate | None:
        """The traced estimate: from the cache; else traced now (``wait``); else queued for the
        background thread, whose result is still returned when it comes within ``patience``
        seconds (a small model's trace takes well under a second, so the tab shows it at once)."""
        found = self._get(arch, settings, wait)
        deadline = time.monotonic() + patience
        while found is None and not wait and time.monotonic() < deadline:
            time.sleep(0.05)
            with self._lock:
                found = self._done.get((arch, settings))
                if (arch, settings) in self._errors:
                    break
        return found

    def _get(self, arch: Architecture, settings: TraceSettings, wait: bool) -> TracedEstimate | None:
        key = (arch, settings)
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            if key in self._errors and not wait:
                return None
            if not wait:
                self._next = key
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._work, name="vram-trace", daemon=True)
                    self._worker.start()
                return None
        return self._run(key)

    def error(self, arch: Architecture, settings: TraceSettings) -> str | None:
        """Why the trace of ``arch`` and ``settings`` failed, or None."""
        return self._errors.get((arch, settings))

    def _run(self, key: tuple[Architecture, TraceSettings]) -> TracedEstimate:
        try:
            result = trace_training_step(key[0], key[1], torch.device("meta"), self._stop)
        except Exception as exc:  # shown in the tab instead of the figure; the formula stays
            with self._lock:
                self._errors[key] = f"{type(exc).__name__}: {exc}"
            raise
        with self._lock:
            self._done[key] = result
            while len(self._done) > self.size:
                self._done.popitem(last=False)
        return result

    def _work(self) -> None:
        while True:
            with self._lock:
                key, self._next = self._next, None
                if self._stop.is_set():
                    self._worker = None
                    return
                if key is None or key in self._done:
                    if self._next is None:
                        self._worker = None
                        return
                    continue
            with contextlib.suppress(Exception):
                self._run(key)


class TraceUnsupported(RuntimeError):
    """This torch cannot run the tracer (``torch_compat.storage_lifetimes_traceable``)."""


TRACES = TraceCache()


def trace_training_step(arch: Architecture, settings: TraceSettings, device: torch.device,
                        stop: threading.Event | None = None) -> TracedEstimate:
    """Trace one training step on ``device``: "meta" for an estimate; "cpu" runs the same step on
    real (zero) tensors, which the tests compare with the meta trace. ``stop``: set it to abandon
    the trace (`memory_trace.TraceStopped`)."""
    if not torch_compat.storage_lifetimes_traceable():
        raise TraceUnsupported(f"torch {torch_compat.version_text()} cannot be traced (its storages' lifetimes "
                               "are not tracked; torch 2.3 or newer is)")
    started = time.perf_counter()
    compute = DTYPES[settings.mixed_precision]
    models = _build_models(arch, settings, compute, device)
    network = create_network(models.unet, models.text_encoders, arch.family, network_dim=settings.network_dim,
                             network_alpha=1.0, conv_dim=settings.conv_dim,
                             train_text_encoder=settings.train_text_encoder)
    network.apply()
    if settings.gradient_checkpointing:
        models.unet.gradient_checkpointing = True
        for te in models.text_encoders:
            te.gradient_checkpointing = True
    lora = [p for p in network.parameters()]
    tracker = LiveBytes(stop)
    weights = sum(_weight_bytes(m, settings.weight_dtype if m is models.unet else settings.text_encoder_weight_dtype
                                if m in models.text_encoders else None) for m in models.on_card())
    lora_bytes = tracker.storage_bytes([*lora, *network.buffers()])
    trained = sum(p.numel() for p in lora if p.requires_grad)
    state_bytes = optimizer_state_bytes(settings.optimizer_type, trained)
    cuda = CudaBehaviour(compute if compute != torch.float32 else None, device.type)
    for block in (models.unet, *models.unet.input_blocks, models.unet.middle_block, *models.unet.output_blocks):
        cuda.autocast_in(block)
    for te in models.text_encoders:
        for layer in te.text_model.encoder.layers:
            cuda.cover(layer)
    # everything made before the step is counted up front: an in-place update or a view of a weight
    # returns its storage, which must not look like a new allocation
    models_all: list[nn.Module] = [models.unet, *models.text_encoders] + ([models.vae] if models.vae else [])
    tracker.adopt(t for m in models_all for t in (*m.parameters(), *m.buffers()))
    tracker.adopt([*lora, *network.buffers()])
    start = tracker.current
    with tracker, cuda, torch_compat.meta_device_module():  # checkpointing on meta under torch < 2.4
        tracker.phase("forward")
        loss = _forward(models, arch, settings, compute, device)
        tracker.phase("backward")
        loss.backward()
        del loss
        grads = tracker.storage_bytes([p.grad for p in lora if p.grad is not None])
        for p in lora:
            p.grad = None
    tracker.close()
    phase_peaks: dict[str, float] = {}
    for record in tracker.phases:
        phase_peaks[record.name] = max(phase_peaks.get(record.name, 0.0), (record.peak_bytes - start) / MB)
    phase_peaks["optimizer step"] = (grads + step_temporaries_bytes(settings.optimizer_type, trained)) / MB
    peak_phase = max(phase_peaks, key=lambda name: phase_peaks[name])
    activation_bytes = max(tracker.peak - start, grads + step_temporaries_bytes(settings.optimizer_type, trained))
    parts = {"weights": weights / MB, "lora": lora_bytes / MB, "optimizer_state": state_bytes / MB,
             "activations": phase_peaks[peak_phase], "cuda_context": CUDA_CONTEXT_MB}
    parts = {name: round(value, 1) for name, value in parts.items()}
    return TracedEstimate(round(sum(parts.values()), 1), parts, peak_phase, round(time.perf_counter() - started, 2),
                          {k: round(v, 1) for k, v in phase_peaks.items()}, activation_bytes, tracker.peak - start)


# ---------------------------------------------------------------------------- the models


@dataclass
class _Models:
    unet: UNetModel
    text_encoders: list[CLIPTextModel]
    vae: AutoencoderKL | None
    settings: TraceSettings

    def on_card(self) -> list[nn.Module]:
        parts: list[nn.Module] = [self.unet]
        if self.settings.text_encoders_on_card:
            parts += self.text_encoders
        if self.vae is not None and self.settings.vae_on_card:
            parts.append(self.vae)
        return parts


def _build_models(arch: Architecture, settings: TraceSettings, dtype: torch.dtype, device: torch.device) -> _Models:
    """The models in the working dtype, on meta; on a real device, zero-filled (values do not
    change memory, and zeros compute fast)."""
    with torch.device("meta"):
        unet = UNetModel(arch.unet)
        text_encoders = [CLIPTextModel(slot.config) for slot in arch.text_encoders]
        vae = AutoencoderKL(arch.vae) if settings.vae_each_step or settings.vae_on_card else None
    modules: list[nn.Module] = [unet, *text_encoders] + ([vae] if vae is not None else [])
    for module in modules:
        module.to(dtype)
        module.requires_grad_(False)
        module.eval()
        if device.type != "meta":
            module.to_empty(device=device)
            with torch.no_grad():
                for tensor in (*module.parameters(), *module.buffers()):
                    tensor.zero_()
    return _Models(unet, text_encoders, vae, settings)


def _weight_bytes(module: nn.Module, storage: torch.dtype | None) -> int:
    """Bytes of ``module``'s frozen tensors, floating ones at ``storage``'s size when given (fp8: 1)."""
    total = 0
    for tensor in (*module.parameters(), *module.buffers()):
        size = tensor.element_size()
        if storage is not None and tensor.is_floating_point():
            size = torch.empty((), dtype=storage, device="meta").element_size()
        total += tensor.numel() * size
    return total


# ---------------------------------------------------------------------------- the optimizer


def optimizer_state_bytes(name: str, parameters: int) -> int:
    """Bytes of optimizer ``name``'s state for ``parameters`` float32 parameters
    (``memory_estimate.OPTIMIZER_STATE_BYTES``; a test checks the torch optimizers' real state)."""
    return parameters * OPTIMIZER_STATE_BYTES.get(name, 8)


def step_temporaries_bytes(name: str, parameters: int) -> int:
    """What the optimizer step allocates for a moment, on top of the state and the gradients.

    On CUDA torch runs AdamW and SGD in their foreach form, whose largest temporary is one float32
    list the size of all parameters (AdamW's sqrt of the second moments; SGD's momentum update);
    gradient clipping adds a few norms. Others are counted like AdamW."""
    return parameters * 4


# ---------------------------------------------------------------------------- one step


def _forward(models: _Models, arch: Architecture, settings: TraceSettings, dtype: torch.dtype,
             device: torch.device) -> torch.Tensor:
    """Latents, conditioning, noise, the U-Net's prediction and the loss, as ``loop.optimizer_step``."""
    batch = settings.batch_size
    width, height = settings.resolution
    if settings.vae_each_step:
        assert models.vae is not None
        with torch.no_grad():
            pixels = torch.zeros(batch, 3, height, width, device=device, dtype=dtype)
            latents = models.vae.encode_latents(pixels, sample=False).float()
            del pixels
    else:
        latents = torch.zeros(batch, arch.unet.in_channels, height // 8, width // 8, device=device)
    cond = _conditioning(models, arch, settings, dtype, device)
    # add_training_noise's draws, without a generator (meta tensors have none): noise, timesteps, x_t
    noise = torch.zeros_like(latents)
    t = torch.zeros(batch, dtype=torch.long, device=device)
    noisy = latents * 0.5 + noise * 0.5
    pred = predict(models.unet, noisy, t, cond, dtype)
    step = StepSettings(family=arch.family, v_prediction=False)
    return compute_loss(pred, latents, noise, t, torch.ones(batch, device=device), step)


def _conditioning(models: _Models, arch: Architecture, settings: TraceSettings, dtype: torch.dtype,
                  device: torch.device) -> Conditioning:
    batch = settings.batch_size
    if not settings.text_encoders_on_card:  # cached outputs, in the encoders' dtype
        context = torch.zeros(batch, TOKENS, arch.unet.context_dim, device=device, dtype=dtype)
        pooled = torch.zeros(batch, arch.text_encoders[-1].config.projection_dim, device=device, dtype=dtype) \
            if arch.family == "sdxl" else None
    else:
        ids = torch.zeros(batch, 1, TOKENS, dtype=torch.long, device=device)
        if arch.family == "sdxl":
            context, pooled = encode_sdxl(models.text_encoders[0], models.text_encoders[1], ids, ids)
        else:
            context, pooled = encode_sd(models.text_encoders[0], ids), None
    y = None
    if arch.family == "sdxl":
        assert pooled is not None
        time_ids = torch.zeros(batch, 6, dtype=torch.long, device=device)
        y = torch.cat([pooled.float(), sdxl_size_embedding(time_ids).float()], dim=1)
    return Conditioning(context, y)
