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
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Callable
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


def is_autocast_enabled(device: torch.device | str) -> bool:
    """Whether autocast is on for ``device``'s type, on every supported torch."""
    device_type = _device_type(device)
    if at_least(2, 4):  # 2.4 added the device argument and deprecated is_autocast_cpu_enabled
        return bool(torch.is_autocast_enabled(device_type))
    if device_type == "cpu":  # 2.1-2.3
        return bool(torch.is_autocast_cpu_enabled())
    if device_type == "cuda":
        return bool(torch.is_autocast_enabled())
    return False  # 2.1-2.3 autocast only CPU and CUDA in the paths we use


def grad_scaler(device: torch.device | str) -> Any:
    """A gradient scaler for fp16 training on ``device`` (CUDA); its class moved in 2.3."""
    device_type = _device_type(device)
    if at_least(2, 3):  # torch.amp.GradScaler(device) from 2.3; torch.cuda.amp's warns from 2.4
        return torch.amp.GradScaler(device_type)
    if device_type != "cuda":
        raise RuntimeError(f"torch {torch.__version__} scales gradients only on CUDA, not {device_type}")
    return torch.cuda.amp.GradScaler()  # 2.1-2.2


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


def version_text() -> str:
    """The running torch's full version string, for messages."""
    return torch.__version__
