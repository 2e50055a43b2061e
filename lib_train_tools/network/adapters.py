"""Which adapter kind a network uses, and building / loading one adapter of that kind.

kohya's ``networks.lora`` gives LoRA (LoCon with a ``conv_dim``); LyCORIS' ``lycoris.kohya`` adds the
kinds chosen by its ``network_args``: ``algo=lora|locon`` (the same LoRA/LoCon modules), ``algo=loha``,
``algo=lokr`` (with ``factor``, ``full_matrix``, ``decompose_both``), and ``dora_wd=True`` for
weight-decomposed training of any of them (``dora_scale`` beside the module's tensors).
"""
from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

from .lora_file import LoRAFileError, ModuleWeights
from .lora_module import LoRAModule
from .loha_module import LoHaModule
from .lokr_module import LoKrModule
from .targets import LoRATarget
from .weight_adapter import file_magnitude

ALGOS = ("lora", "locon", "loha", "lokr")
NETWORK_MODULES = ("networks.lora", "lycoris.kohya")
Adapter = Union[LoRAModule, LoHaModule, LoKrModule]


class AdapterError(ValueError):
    """The adapter options do not fit together (e.g. LoHa asked of kohya's networks.lora)."""


@dataclass(frozen=True)
class AdapterSpec:
    """The adapter kind of a network: ``algo`` (lora = locon), DoRA, and LoKr's layout options."""

    algo: str = "lora"
    dora: bool = False
    factor: int = -1
    full_matrix: bool = False
    decompose_both: bool = False

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise AdapterError(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.factor == 0 or self.factor < -1:
            raise AdapterError(f"factor must be -1 (automatic) or a positive number, got {self.factor}")

    @property
    def kind(self) -> str:
        """``lora`` (LoRA/LoCon), ``loha`` or ``lokr``."""
        return "lora" if self.algo in ("lora", "locon") else self.algo

    def describe(self) -> str:
        name = {"lora": "LoRA", "loha": "LoHa", "lokr": "LoKr"}[self.kind]
        return f"{name} with DoRA" if self.dora else name


def adapter_spec(network_module: str, algo: str | None = None, dora_wd: bool | None = None,
                 factor: int | None = None, full_matrix: bool | None = None,
                 decompose_both: bool | None = None) -> AdapterSpec:
    """The spec a config asks for; the LyCORIS-only kinds need ``network_module = "lycoris.kohya"``."""
    if network_module not in NETWORK_MODULES:
        raise AdapterError(f"network_module must be one of {', '.join(NETWORK_MODULES)}, got {network_module!r}")
    spec = AdapterSpec((algo or "lora").lower(), bool(dora_wd), -1 if factor is None else factor,
                       bool(full_matrix), bool(decompose_both))
    if network_module == "networks.lora" and (spec.kind != "lora" or spec.dora):
        raise AdapterError(f"{spec.describe()} needs network_module = \"lycoris.kohya\" "
                           "(kohya's networks.lora trains LoRA/LoCon only)")
    return spec


def make_adapter(spec: AdapterSpec, target: LoRATarget, rank: int, alpha: float | None, multiplier: float,
                 dropout: float, rank_dropout: float, module_dropout: float) -> Adapter:
    """One adapter of ``spec``'s kind for ``target``.

    Neuron dropout (``dropout``) acts on the rank activations of a plain LoRA only; LoHa, LoKr and
    DoRA build the whole weight change, where LyCORIS ignores it as well.
    """
    if spec.kind == "lora":
        return LoRAModule(target.name, target.module, rank, alpha, multiplier, dropout, rank_dropout,
                          module_dropout, target.store_as_conv, weight_decompose=spec.dora)
    if spec.kind == "loha":
        return LoHaModule(target.name, target.module, rank, alpha, multiplier, rank_dropout, module_dropout,
                          spec.dora)
    return LoKrModule(target.name, target.module, rank, alpha, multiplier, rank_dropout, module_dropout, spec.dora,
                      spec.factor, spec.full_matrix, spec.decompose_both)


def spec_of_file(modules: Mapping[str, ModuleWeights], label: str) -> AdapterSpec:
    """The spec a file's modules were trained with; one kind per file."""
    kinds = collections.Counter((m.kind, m.dora) for m in modules.values())
    if len(kinds) > 1:
        listed = ", ".join(f"{n} {k}{' + DoRA' if d else ''}" for (k, d), n in kinds.items())
        raise LoRAFileError(f"{label}: mixes module kinds ({listed}); one kind per file is supported")
    kind, dora = next(iter(kinds))
    return AdapterSpec(kind, dora)


def check_same_kind(requested: AdapterSpec, found: AdapterSpec, label: str) -> None:
    """A file to continue from must hold the kind the config asks for."""
    if (requested.kind, requested.dora) != (found.kind, found.dora):
        raise AdapterError(f"{label} holds a {found.describe()} network, but the config asks for "
                           f"{requested.describe()}")


@torch.no_grad()
def load_adapter(module: Adapter, weights: ModuleWeights, label: str) -> None:
    """Copy one module's file tensors into ``module``; LoRAFileError when kind or shapes disagree."""
    module_kind = "lora" if isinstance(module, LoRAModule) else "loha" if isinstance(module, LoHaModule) else "lokr"
    if weights.kind != module_kind:
        raise LoRAFileError(f"{label}: {module.lora_name} is {weights.kind} in the file, the network is {module_kind}")
    if not isinstance(module, LoRAModule):
        module.load_file_weights(weights.tensors, weights.alpha, label)
        return
    for param, part in ((module.lora_down.weight, "lora_down.weight"), (module.lora_up.weight, "lora_up.weight")):
        param.copy_(fit(weights.tensors[part], param, f"{label}: {module.lora_name}.{part}"))
    module.alpha.fill_(module.rank if weights.alpha is None else weights.alpha)   # no alpha (old files): scale 1
    stored = weights.tensors.get("dora_scale")
    if (stored is None) != (module.dora_scale is None):
        raise LoRAFileError(f"{label}: {module.lora_name}: the file and the network disagree on DoRA (dora_scale)")
    if stored is not None and module.dora_scale is not None:
        module.dora_scale.copy_(file_magnitude(stored, module.layer.weight, f"{label}: {module.lora_name}.dora_scale"))


def fit(value: Tensor, param: Tensor, what: str) -> Tensor:
    """``value`` in ``param``'s shape; a Linear's [a, b] and a 1x1 conv's [a, b, 1, 1] are interchangeable."""
    if value.shape == param.shape:
        return value
    if value.shape[:2] == param.shape[:2] and {value.ndim, param.ndim} == {2, 4} \
            and value.numel() == param.numel():
        return value.reshape(param.shape)
    raise LoRAFileError(f"{what} has shape {list(value.shape)}, the network expects {list(param.shape)} "
                        f"(a different rank? continue with create_network_from_weights to take ranks from the file)")


__all__ = ["ALGOS", "Adapter", "AdapterError", "AdapterSpec", "NETWORK_MODULES", "adapter_spec", "check_same_kind",
           "fit", "load_adapter", "make_adapter", "spec_of_file"]
