"""Every difference between the torch versions Train Tools runs on, in one place.

The trainer runs on the host's torch, never on one of ours: AUTOMATIC1111 v1.10 installs torch
2.1.2, Forge 2.3.1, and owners of new cards run the newest release. Code elsewhere in the package
calls these helpers instead of testing ``torch.__version__`` or using an API newer than the floor
(``MIN_TORCH``). Each branch names the release it is for; the tests drive every branch by patching
``TORCH_VERSION`` (and the torch functions a branch calls), so the old paths are exercised on any
torch.

What differs, oldest first:

* 2.1: CPU autocast accepts only bfloat16, and refuses ``dtype=float32`` even with
  ``enabled=False``, so a disabled autocast is never entered at all (``autocast``).
* before 2.3: the gradient scaler lives in ``torch.cuda.amp`` (``grad_scaler``); from 2.3 on,
  ``torch.amp.GradScaler(device)`` (the old name warns from 2.4).
* before 2.4: ``torch.is_autocast_enabled()`` takes no device and answers for CUDA;
  the CPU has ``is_autocast_cpu_enabled()`` (deprecated from 2.4) (``is_autocast_enabled``).
* ``torch.cuda.is_bf16_supported()`` answers "the card has bfloat16 units" in 2.1; from 2.3 it
  also says yes for cards that only emulate it (GTX 10xx, RTX 20xx), and only 2.4 added
  ``including_emulation=False``; so the card's compute capability is read instead, the same way on
  every release (``bf16_hardware``).
* every release: CUDA out of memory is ``torch.cuda.OutOfMemoryError`` (the top-level alias
  ``torch.OutOfMemoryError`` exists only in newer ones); the CPU allocator raises a plain
  ``RuntimeError`` (``is_out_of_memory``).
* before 2.5: no ``torch.optim.Adafactor`` (``adafactor_class``).
* every release: ``GradScaler.unscale_`` refuses float16 gradients ("Attempting to unscale FP16
  gradients"); full_fp16 training has them, so its scaler passes ``allow_fp16=True`` to the private
  ``_unscale_grads_`` that both scaler classes share (``grad_scaler(..., fp16_gradients=True)``).
* from 2.1: ``torch.float8_e4m3fn`` (``float8_storage_dtype``); fp8 base weights are for CUDA only
  (``fp8_storage_problem``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import re
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any, ContextManager

import torch

MIN_TORCH = (2, 1, 2)  # AUTOMATIC1111 v1.10.1's torch; the oldest we test in CI


def parse_version(text: str) -> tuple[int, int, int]:
    """``"2.3.1+cu121"`` -> ``(2, 3, 1)``; ``"2.6.0.dev20241112"`` -> ``(2, 6, 0)``."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        raise ValueError(f"not a torch version: {text!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


TORCH_VERSION = parse_version(torch.__version__)


def at_least(*release: int) -> bool:
    """True when the running torch is ``release`` or newer (``at_least(2, 3)``)."""
    return TORCH_VERSION >= tuple(release) + (0,) * (3 - len(release))


def version_problem() -> str | None:
    """Why this torch is too old for Train Tools, or None when it is supported."""
    if TORCH_VERSION >= MIN_TORCH:
        return None
    floor = ".".join(map(str, MIN_TORCH))
    return (f"torch {torch.__version__} is older than {floor}, the oldest Train Tools supports "
            f"(AUTOMATIC1111 v1.10 ships 2.1.2); update the WebUI or its torch")


def _device_type(device: torch.device | str) -> str:
    return device if isinstance(device, str) else device.type


def autocast(device: torch.device | str, dtype: torch.dtype, enabled: bool) -> ContextManager:
    """``torch.autocast`` entered only when it is enabled.

    torch 2.1's CPU autocast raises "AutocastCPU only support Bfloat16" for any other dtype, even
    with ``enabled=False``; a disabled autocast changes nothing, so it is never built.
    """
    if not enabled:
        return contextlib.nullcontext()
    device_type = _device_type(device)
    if device_type == "cpu" and dtype != torch.bfloat16 and not at_least(2, 3):
        raise RuntimeError(f"torch {torch.__version__} autocasts on the CPU only to bfloat16, not {dtype}")
    return torch.autocast(device_type, dtype=dtype)


_EMULATED_AUTOCAST = threading.local()  # device types train/cuda_behaviour.py casts for on this thread


@contextlib.contextmanager
def emulated_autocast(device_type: str) -> Iterator[None]:
    """Make `is_autocast_enabled` say yes for ``device_type`` on this thread while the memory trace
    (``train/cuda_behaviour.py``) casts as CUDA's autocast would: torch has no autocast for the meta
    device (``torch.is_autocast_enabled("meta")`` raises from 2.4 on)."""
    previous: frozenset[str] = getattr(_EMULATED_AUTOCAST, "types", frozenset())
    _EMULATED_AUTOCAST.types = previous | {device_type}
    try:
        yield
    finally:
        _EMULATED_AUTOCAST.types = previous


def is_autocast_enabled(device: torch.device | str) -> bool:
    """Whether autocast is on for ``device``'s type, on every supported torch."""
    device_type = _device_type(device)
    if device_type in getattr(_EMULATED_AUTOCAST, "types", ()):
        return True
    if device_type == "meta":  # no autocast exists for it; torch 2.4+ raises when asked
        return False
    if at_least(2, 4):  # 2.4 added the device argument and deprecated is_autocast_cpu_enabled
        return bool(torch.is_autocast_enabled(device_type))
    if device_type == "cpu":  # 2.1-2.3
        return bool(torch.is_autocast_cpu_enabled())
    if device_type == "cuda":
        return bool(torch.is_autocast_enabled())
    return False  # 2.1-2.3 autocast only CPU and CUDA in the paths we use


def grad_scaler(device: torch.device | str, fp16_gradients: bool = False) -> Any:
    """A gradient scaler for fp16 training on ``device`` (CUDA); its class moved in 2.3.

    ``fp16_gradients``: the trained weights themselves are float16 (full_fp16), so their gradients
    are too. ``unscale_`` refuses those on every release; unscaling them in float16 is safe because
    the scaler checks the unscaled values for inf/NaN and skips the step when one overflowed.
    """
    device_type = _device_type(device)
    if at_least(2, 3):  # torch.amp.GradScaler(device) from 2.3; torch.cuda.amp's warns from 2.4
        scaler = torch.amp.GradScaler(device_type)
    elif device_type != "cuda":
        raise RuntimeError(f"torch {torch.__version__} scales gradients only on CUDA, not {device_type}")
    else:
        scaler = torch.cuda.amp.GradScaler()  # 2.1-2.2
    if fp16_gradients:
        _allow_fp16_unscale(scaler)
    return scaler


def _allow_fp16_unscale(scaler: Any) -> None:
    """Make ``scaler.unscale_`` accept float16 gradients.

    Both scaler classes (2.1's ``torch.cuda.amp`` and 2.3+'s ``torch.amp``) unscale through
    ``_unscale_grads_(optimizer, inv_scale, found_inf, allow_fp16)`` and call it with
    ``allow_fp16=False``; an instance attribute that passes True replaces it for this scaler only.
    """
    unscale_grads = scaler._unscale_grads_

    def unscale_allowing_fp16(optimizer, inv_scale, found_inf, allow_fp16):
        return unscale_grads(optimizer, inv_scale, found_inf, True)

    scaler._unscale_grads_ = unscale_allowing_fp16


def bf16_hardware(device: torch.device | str) -> bool:
    """True when ``device`` computes bfloat16 natively (not by emulation, which is many times slower).

    CPUs: always (autocast to bfloat16 works on every CPU torch supports). CUDA: Ampere (compute
    capability 8) and newer, or ROCm; GTX 10xx / RTX 20xx cards emulate it.
    """
    device = torch.device(device) if isinstance(device, str) else device
    if device.type == "cpu":
        return True
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    if torch.version.hip:  # ROCm: every AMD card torch supports computes bfloat16
        return True
    # not is_bf16_supported(): from 2.3 it counts emulation, and only 2.4+ can be told not to
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


# What the allocators say when they run out; torch raises RuntimeError for these on some paths
_OOM_TEXT = ("out of memory", "can't allocate memory", "defaultcpuallocator", "not enough memory",
             "cannot allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """True when ``error`` (or an error it was raised from) is an allocation failure, CUDA or CPU."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (torch.cuda.OutOfMemoryError, MemoryError)):  # CUDA's exists on every release
            return True
        if isinstance(current, RuntimeError) and any(t in str(current).lower() for t in _OOM_TEXT):
            return True
        if isinstance(current, OSError) and current.errno == errno.ENOMEM:
            return True
        current = current.__cause__ or current.__context__
    return False


def adafactor_class() -> Callable[..., torch.optim.Optimizer] | None:
    """``torch.optim.Adafactor``, which arrived in 2.5; None before."""
    return getattr(torch.optim, "Adafactor", None) if at_least(2, 5) else None


def float8_storage_dtype() -> torch.dtype | None:
    """``torch.float8_e4m3fn`` (4 exponent bits, 3 mantissa bits, largest value 448), new in 2.1; None
    on a torch without it."""
    return getattr(torch, "float8_e4m3fn", None) if at_least(2, 1) else None


def fp8_storage_problem(device: torch.device | str) -> str | None:
    """Why frozen weights cannot be stored as float8 for training on ``device``, or None when they can.

    Storing is a plain cast, which every CUDA card does (no fp8 tensor cores are needed: the weights
    are cast back to the working precision before each matmul). The CPU could too, but memory is
    rarely its limit, so the cast back on every step would only slow a run that is slow already;
    MPS has no float8 type.
    """
    if float8_storage_dtype() is None:
        return (f"fp8_base needs torch 2.1 or newer (for torch.float8_e4m3fn); this is torch "
                f"{torch.__version__}")
    device_type = _device_type(device)
    if device_type == "cuda":
        return None
    if device_type == "mps":
        return "fp8_base needs a CUDA GPU: Apple's MPS backend has no float8 type"
    return (f"fp8_base needs a CUDA GPU, and this run trains on {device_type}: float8 storage is there to "
            "save GPU memory, and elsewhere it would only add a conversion of every weight to every step")


def version_text() -> str:
    """The running torch's full version string, for messages."""
    return torch.__version__


def cuda_memory_info(device: int = 0) -> tuple[int, int] | None:
    """(free, total) bytes of CUDA card ``device``, or None unless this process has already started
    CUDA: asking would otherwise create a CUDA context (hundreds of MiB of the card) just to look.
    ``torch.cuda.mem_get_info`` (cudaMemGetInfo) counts every process on the card, as nvidia-smi does."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    free, total = torch.cuda.mem_get_info(device)
    return int(free), int(total)


def storage_lifetimes_traceable() -> bool:
    """Whether a storage's Python object lives exactly as long as its C++ storage, so that the
    memory tracer (``train/memory_trace.py``) learns of each free through a weakref finalizer.
    From 2.3 (run on 2.3.1, Forge's, and the newest): torch 2.1.2 (A1111's) crashes the process
    (segfault) when such a finalizer is detached after its storage went; 2.2 was never run."""
    return at_least(2, 3)


@functools.lru_cache(maxsize=1)
def checkpoint_runs_on_meta() -> bool:
    """Whether ``torch.utils.checkpoint`` (non-reentrant) accepts meta tensors, which the traced
    memory estimate needs for gradient checkpointing. Older releases look up ``torch.meta`` as a
    device module and fail (pytorch issue 133550, reported against 2.4); asked once, by trying."""
    from torch.utils.checkpoint import checkpoint

    x = torch.zeros(2, device="meta", requires_grad=True)
    try:
        checkpoint(torch.sin, x, use_reentrant=False).sum().backward()
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


def checkpoint(function: Callable[..., Any], *args: Any) -> Any:
    """Gradient checkpointing of ``function(*args)`` (Chen et al. 2016), torch's non-reentrant
    ``torch.utils.checkpoint.checkpoint``: activations are freed after the forward pass and
    recomputed in the backward pass.

    On meta tensors (the traced memory estimate), torch before the fix of pytorch issue 133550
    (A1111's 2.1.2, Forge's 2.3.1) looks up a device module ``torch.meta`` that does not exist,
    only to stash the RNG state and the device's autocast state. There the call runs without RNG
    stashing (meta tensors hold no random numbers) and with a stand-in ``torch.meta`` that exists
    only inside `meta_device_module`, which must also cover the backward pass (its recomputation
    looks the module up again, then does nothing with it: meta has no RNG and no autocast)."""
    from torch.utils.checkpoint import checkpoint as torch_checkpoint

    if any(isinstance(a, torch.Tensor) and a.device.type == "meta" for a in args) and not checkpoint_runs_on_meta():
        with meta_device_module():
            return torch_checkpoint(function, *args, use_reentrant=False, preserve_rng_state=False)
    return torch_checkpoint(function, *args, use_reentrant=False)


_META_MODULE_LOCK = threading.RLock()


@contextlib.contextmanager
def meta_device_module() -> Iterator[None]:
    """A stand-in ``torch.meta`` device module while inside (nested uses share it); see `checkpoint`.
    Nothing when torch's checkpoint runs on meta tensors itself."""
    if checkpoint_runs_on_meta():
        yield
        return
    with _META_MODULE_LOCK:
        added = not hasattr(torch, "meta")
        if added:
            torch.meta = types.SimpleNamespace()  # type: ignore[attr-defined]
        try:
            yield
        finally:
            if added:
                del torch.meta  # type: ignore[attr-defined]
