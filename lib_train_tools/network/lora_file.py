"""Reading and writing kohya-format LoRA files (``.safetensors``).

A kohya LoRA/LoCon file holds, per module name, exactly ``<name>.lora_down.weight``,
``<name>.lora_up.weight`` and ``<name>.alpha`` (a 0-dim float), plus a flat str->str metadata header;
nothing else may be in it, as diffusers refuses a kohya file with any other tensor. LyCORIS files
(``lycoris.kohya``, which A1111's and Forge's Lora loaders read) use the same module names with the
parts of their kind instead: LoHa ``hada_w1_a/_b``, ``hada_w2_a/_b``; LoKr ``lokr_w1`` (or
``lokr_w1_a/_b``) and ``lokr_w2`` (or ``lokr_w2_a/_b``); any kind may add DoRA's ``dora_scale``.
Writing goes to a temporary file in the target folder (``atomic.atomic_path``, ``.tt-tmp-...``)
that is then renamed over the target, so a
crash never leaves a half-written LoRA behind; a failed write removes it. A LoRA whose tensors are
not all finite (NaN or infinite) is never written: ``NonFiniteTensors`` says which.
"""
from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Union

import torch
from torch import Tensor, nn

from ..atomic import atomic_path

PARTS = ("lora_down.weight", "lora_up.weight", "alpha")
# The tensors of each kind (besides alpha and dora_scale); a module's kind is the one its parts name.
KIND_PARTS = {
    "lora": ("lora_down.weight", "lora_up.weight"),
    "loha": ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"),
    "lokr": ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b"),
}
ALL_PARTS = frozenset(p for parts in KIND_PARTS.values() for p in parts) | {"alpha", "dora_scale"}
TORCH_SUFFIXES = (".pt", ".ckpt", ".bin")

PathLike = Union[str, os.PathLike]


class LoRAFileError(ValueError):
    """A LoRA file (or state dict) is missing, unreadable or not in kohya's LoRA/LoCon format."""


class NonFiniteTensors(ValueError):
    """Tensors about to be written hold NaN or infinite values; nothing was written.

    ``names`` are the bad tensors, ``total`` how many there were in all; ``overflow`` is True when
    they were finite before the conversion to the file's dtype (values beyond its range).
    """

    def __init__(self, path: Path, names: list[str], total: int, overflow: bool, dtype: torch.dtype) -> None:
        self.path, self.names, self.total, self.overflow = path, names, total, overflow
        why = (f": finite in training, but beyond the range of {str(dtype).replace('torch.', '')}"
               if overflow else "")
        super().__init__(f"{path.name}: {len(names)} of {total} tensors are not finite (NaN or infinite){why}, "
                         f"e.g. {few(names, 2)}; the file was not written")


@dataclass(frozen=True)
class ModuleWeights:
    """The tensors of one module as stored in a file: ``tensors`` maps a part (``lora_down.weight``,
    ``hada_w1_a``, ``dora_scale``, ...) to its tensor; ``alpha`` is kept apart."""

    tensors: Mapping[str, Tensor]
    alpha: float | None   # None: old files without alpha, which mean scale 1
    kind: str = "lora"    # lora (LoRA/LoCon), loha or lokr

    @property
    def down(self) -> Tensor:
        return self.tensors["lora_down.weight"]

    @property
    def up(self) -> Tensor:
        return self.tensors["lora_up.weight"]

    @property
    def dora(self) -> bool:
        return "dora_scale" in self.tensors

    @property
    def rank(self) -> int:
        """The rank the WebUI loaders divide alpha by (a LoKr with both halves whole: its alpha, or 1)."""
        t = self.tensors
        if self.kind == "lora":
            return int(self.down.shape[0])
        if self.kind == "loha":
            return int(t["hada_w1_b"].shape[0])
        for part in ("lokr_w2_b", "lokr_w1_b"):
            if part in t and f"{part[:-2]}" not in t:
                return int(t[part].shape[0])
        return max(1, int(round(self.alpha))) if self.alpha else 1

    @property
    def spatial_kernel(self) -> bool:
        """True for a kxk convolution (k > 1) where the file shows it (LoRA/LoCon, a whole 4-D lokr_w2)."""
        shown = self.tensors.get("lora_down.weight", self.tensors.get("lokr_w2"))
        return shown is not None and shown.ndim == 4 and tuple(shown.shape[2:]) != (1, 1)


@dataclass(frozen=True)
class LoRADims:
    """The network's rank and alpha as a file shows them (the most common value of each kind)."""

    network_dim: int | None
    network_alpha: float | None
    conv_dim: int | None = None
    conv_alpha: float | None = None


def few(names, n: int = 5) -> str:
    """A short, sorted listing for error messages."""
    names = sorted(names)
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def read_lora(path: PathLike) -> tuple[dict[str, Tensor], dict[str, str]]:
    """All tensors (on the CPU) and the metadata of a LoRA file."""
    path = Path(path)
    if not path.is_file():
        raise LoRAFileError(f"{path}: no such LoRA file")
    if path.suffix.lower() in TORCH_SUFFIXES:
        try:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a damaged pickle
            raise LoRAFileError(f"{path}: not a readable torch file ({exc})") from exc
        if not isinstance(tensors, dict):
            raise LoRAFileError(f"{path}: expected a dict of tensors, found a {type(tensors).__name__}")
        return dict(tensors), {}
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise LoRAFileError(f"{path}: not a readable .safetensors file ({exc})") from exc


def group_modules(tensors: Mapping[str, Tensor], source: str = "state dict") -> dict[str, ModuleWeights]:
    """Split file keys into modules, checking that each holds exactly the parts of one known kind."""
    parts: dict[str, dict[str, Tensor]] = collections.defaultdict(dict)
    unknown = []
    for key, value in tensors.items():
        name, _, part = key.partition(".")
        if part not in ALL_PARTS or not isinstance(value, Tensor):
            unknown.append(key)
        else:
            parts[name][part] = value
    if unknown:
        raise LoRAFileError(f"{source}: keys that are not LoRA/LoCon, LoHa, LoKr or DoRA tensors (Tucker/CP forms "
                            f"and bundled embeddings are not supported): {few(unknown)}")
    modules = {name: _module_weights(name, p, source) for name, p in parts.items()}
    if not modules:
        raise LoRAFileError(f"{source}: contains no LoRA modules")
    return modules


def _module_weights(name: str, parts: dict[str, Tensor], source: str) -> ModuleWeights:
    kinds = [kind for kind, names in KIND_PARTS.items() if any(p in parts for p in names)]
    if len(kinds) != 1:
        raise LoRAFileError(f"{source}: module {name} has " + ("no weights" if not kinds else
                            f"the parts of several kinds ({', '.join(kinds)}): {few(parts)}"))
    for part, t in parts.items():
        if not t.is_floating_point():
            raise LoRAFileError(f"{source}: {name}.{part} is {t.dtype}, not a float tensor")
    alpha = parts.pop("alpha", None)
    if alpha is not None and alpha.numel() != 1:
        raise LoRAFileError(f"{source}: {name}.alpha must be a scalar, has shape {list(alpha.shape)}")
    {"lora": _check_lora, "loha": _check_loha, "lokr": _check_lokr}[kinds[0]](name, parts, source)
    return ModuleWeights(parts, None if alpha is None else float(alpha.reshape(())), kinds[0])


def _check_lora(name: str, parts: dict[str, Tensor], source: str) -> None:
    down, up = parts.get("lora_down.weight"), parts.get("lora_up.weight")
    if down is None or up is None:
        missing = "lora_down.weight" if down is None else "lora_up.weight"
        raise LoRAFileError(f"{source}: module {name} has no {missing}")
    if down.ndim not in (2, 4) or up.ndim != down.ndim or down.shape[0] != up.shape[1]:
        raise LoRAFileError(f"{source}: module {name} has mismatched shapes down {list(down.shape)} "
                            f"up {list(up.shape)}")


def _check_loha(name: str, parts: dict[str, Tensor], source: str) -> None:
    missing = [p for p in KIND_PARTS["loha"] if p not in parts]
    if missing:
        raise LoRAFileError(f"{source}: LoHa module {name} has no {', '.join(missing)}")
    w1a, w1b, w2a, w2b = (parts[p] for p in KIND_PARTS["loha"])
    if any(t.ndim != 2 for t in (w1a, w1b, w2a, w2b)) or w1a.shape[1] != w1b.shape[0] \
            or w2a.shape[1] != w2b.shape[0] or w1a.shape[0] != w2a.shape[0] or w1b.shape[1] != w2b.shape[1]:
        raise LoRAFileError(f"{source}: LoHa module {name} has mismatched shapes "
                            f"{[list(parts[p].shape) for p in KIND_PARTS['loha']]}")


def _check_lokr(name: str, parts: dict[str, Tensor], source: str) -> None:
    for half in ("lokr_w1", "lokr_w2"):
        if half not in parts and not (f"{half}_a" in parts and f"{half}_b" in parts):
            raise LoRAFileError(f"{source}: LoKr module {name} has no {half} (nor {half}_a and {half}_b)")


def lora_dims(modules: Mapping[str, ModuleWeights]) -> LoRADims:
    """Rank/alpha of the plain modules and of the kxk (LoCon) convolutions; alpha defaults to rank."""

    def most_common(items: list[ModuleWeights]) -> tuple[int | None, float | None]:
        if not items:
            return None, None
        counts = collections.Counter((m.rank, m.alpha if m.alpha is not None else float(m.rank)) for m in items)
        return counts.most_common(1)[0][0]

    plain = most_common([m for m in modules.values() if not m.spatial_kernel])
    conv = most_common([m for m in modules.values() if m.spatial_kernel])
    return LoRADims(plain[0], plain[1], conv[0], conv[1])


def save_lora(path: PathLike, network: nn.Module | Mapping[str, Tensor], metadata: Mapping[str, str],
              dtype: torch.dtype = torch.float16,
              add_hashes: Callable[[Mapping[str, Tensor], Mapping[str, str]], dict[str, str]] | None = None) -> Path:
    """Write ``network``'s tensors (weights in ``dtype``, alpha and dora_scale as float32) with ``metadata``.

    ``network`` is a ``LoRANetwork`` or its ``state_dict()``. ``add_hashes`` may extend the
    metadata from the exact tensors written (the ``sshs_*`` hashes). The file appears only when complete.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise LoRAFileError(f"{path}: LoRA files are written as .safetensors (metadata needs that format)")
    bad = [f"{k!r}: {type(v).__name__}" for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
    if bad:
        raise LoRAFileError(f"{path}: metadata must map str to str; not so for {few(bad)}")
    state = network.state_dict() if isinstance(network, nn.Module) else dict(network)
    group_modules(state, source=str(path))
    tensors = {k: _for_file(k, v, dtype) for k, v in state.items()}
    _check_finite(path, state, tensors, dtype)
    if add_hashes is not None:
        metadata = add_hashes(tensors, metadata)
    from safetensors.torch import save_file

    # atomic_path keeps the usual permissions of a new file (0o666 less the umask): recent safetensors
    # versions write owner-only (0600) files, which a WebUI running as another user cannot read.
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=dict(metadata))
    return path


def _check_finite(path: Path, state: Mapping[str, Tensor], tensors: Mapping[str, Tensor],
                  dtype: torch.dtype) -> None:
    bad = [k for k, v in tensors.items() if not bool(torch.isfinite(v).all())]
    if bad:
        overflow = all(bool(torch.isfinite(state[k]).all()) for k in bad)
        raise NonFiniteTensors(path, bad, len(tensors), overflow, dtype)


def _for_file(key: str, value: Tensor, dtype: torch.dtype) -> Tensor:
    # alpha stays float32: alpha/rank is the scale, and half precision would round non-integer alphas.
    # dora_scale too: it scales the whole weight, not a small change of it (one float per input channel).
    target = torch.float32 if key.endswith((".alpha", ".dora_scale")) else dtype
    value = value.detach().to(device="cpu", dtype=target)
    return value.reshape(()) if key.endswith(".alpha") else value.contiguous()
