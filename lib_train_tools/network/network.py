"""The LoRA / LoCon network: one ``LoRAModule`` per target layer, named and saved exactly as kohya does.

``create_network`` builds a fresh network from ranks and alphas; ``create_network_from_weights``
continues from an existing file, taking each module's rank and alpha from it. The network is an
``nn.Module`` whose direct children are the adapters under their kohya names, so ``state_dict()``
holds exactly the keys of a kohya file (``<name>.lora_down.weight``, ``.lora_up.weight``, ``.alpha``).
``NetworkConfig.adapter`` picks LyCORIS' LoHa / LoKr modules or DoRA instead (``adapters.py``); their
keys are LyCORIS' (``hada_w1_a``, ``lokr_w1``, ``dora_scale``, ...) under the same module names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import torch
from torch import Tensor, nn

from lib_train_tools.models.unet import UNetModel

from .blocks import BlockOptions, BlockPlan, block_plan
from .kohya_names import check_family, text_encoder_prefixes
from .lora_file import LoRAFileError, ModuleWeights, few, group_modules, lora_dims, read_lora
from .adapters import Adapter, AdapterSpec, load_adapter, make_adapter, spec_of_file
from .param_groups import LoRAPlus, build_param_groups
from .targets import LoRATarget, text_encoder_targets, unet_targets

WeightsSource = Union[str, os.PathLike, Mapping[str, Tensor]]


class NetworkError(ValueError):
    """The network cannot be built as asked (bad setting, missing model, nothing to train)."""


@dataclass(frozen=True)
class NetworkConfig:
    """Ranks, alphas, dropouts and which parts to train. ``conv_dim`` set means LoCon."""

    network_dim: int = 4
    network_alpha: float | None = 1.0      # None or 0: alpha = rank (scale 1)
    conv_dim: int | None = None
    conv_alpha: float | None = None        # None with conv_dim set: 1.0, as in kohya
    dropout: float = 0.0                   # neuron dropout on the rank activations
    rank_dropout: float = 0.0              # drop whole rank channels per sample
    module_dropout: float = 0.0            # skip the whole branch
    train_unet: bool = True
    train_text_encoder: bool = True
    multiplier: float = 1.0
    adapter: AdapterSpec = AdapterSpec()   # the module kind: LoRA/LoCon (default), LoHa, LoKr; DoRA

    def __post_init__(self) -> None:
        if self.network_dim < 1:
            raise NetworkError(f"network_dim must be >= 1, got {self.network_dim}")
        if self.conv_dim is not None and self.conv_dim < 1:
            raise NetworkError(f"conv_dim must be >= 1 (or unset for plain LoRA), got {self.conv_dim}")
        for name in ("dropout", "rank_dropout", "module_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise NetworkError(f"{name} must be in [0, 1), got {value}")
        if not (self.train_unet or self.train_text_encoder):
            raise NetworkError("nothing to train: both train_unet and train_text_encoder are off")

    @property
    def locon(self) -> bool:
        return self.conv_dim is not None

    def rank_alpha(self, target: LoRATarget) -> tuple[int, float | None]:
        """kohya's rule: kxk convolutions use conv_dim/conv_alpha, everything else network_dim/alpha."""
        if target.spatial_kernel:
            # kxk convolutions are LoCon targets, which LoRANetwork only asks about when conv_dim is set.
            assert self.conv_dim is not None, f"{target.name}: a kxk convolution needs conv_dim"
            return self.conv_dim, 1.0 if self.conv_alpha is None else self.conv_alpha
        return self.network_dim, self.network_alpha


@dataclass(frozen=True)
class LoadResult:
    """What ``load_weights`` did."""

    loaded: int
    skipped: tuple[str, ...]   # in the file, but for a part that is not being trained
    missing: tuple[str, ...]   # in the network, not in the file (left at their initial values)


class LoRANetwork(nn.Module):
    """LoRA adapters for a U-Net and its text encoders; see ``create_network``."""

    def __init__(self, unet: UNetModel | None, text_encoders: Sequence[nn.Module], family: str,
                 config: NetworkConfig, module_dims: Mapping[str, tuple[int, float | None]] | None = None,
                 blocks: BlockPlan | None = None) -> None:
        super().__init__()
        self.family = check_family(family)
        self.config = config
        self.blocks = blocks  # block-wise ranks and lr weights (blocks.py); None: not block-wise
        module_dims = dict(module_dims or {})
        candidates = _candidate_targets(unet, text_encoders, family, config)
        self.known_names = frozenset(t.name for group in candidates.values() for t in group)
        self.unet_loras: list[Adapter] = []
        self.text_encoder_loras: list[Adapter] = []
        for trained, group in ((config.train_text_encoder, candidates["te"]), (config.train_unet, candidates["unet"])):
            for target in group if trained else ():
                dims = module_dims.get(target.name) or self._rank_alpha(target)
                if dims is None:
                    continue
                rank, alpha = dims
                module = make_adapter(config.adapter, target, rank, alpha, config.multiplier, config.dropout,
                                      config.rank_dropout, config.module_dropout)
                if target.name in self._modules:
                    raise NetworkError(f"two layers map to the same LoRA name {target.name}")
                self.add_module(target.name, module)
                (self.unet_loras if target.prefix == "lora_unet" else self.text_encoder_loras).append(module)

    def _rank_alpha(self, target: LoRATarget) -> tuple[int, float | None] | None:
        """A new module's (rank, alpha); None leaves the layer without one (LoCon off, or rank 0 in its block)."""
        if target.prefix == "lora_unet" and self.blocks is not None and self.blocks.dims is not None:
            return self.blocks.rank_alpha(target.name, target.locon, target.spatial_kernel)
        if target.locon and not self.config.locon:
            return None
        return self.config.rank_alpha(target)

    # ------------------------------------------------------------------ use

    def loras(self) -> list[Adapter]:
        return self.text_encoder_loras + self.unet_loras

    def module_counts(self) -> dict[str, int]:
        """Modules per name prefix (``lora_unet``, ``lora_te`` or ``lora_te1``/``lora_te2``), for reporting."""
        counts: dict[str, int] = {}
        for module in self.loras():
            prefix = module.lora_name.split("_text_model_")[0] if module.lora_name.startswith("lora_te") \
                else "lora_unet"
            counts[prefix] = counts.get(prefix, 0) + 1
        return counts

    # Shadows nn.Module.apply(fn) on purpose: the network's public verb, used by callers and tests.
    def apply(self) -> None:  # type: ignore[override]
        """Route every target layer through its adapter."""
        for module in self.loras():
            module.apply()

    def remove(self) -> None:
        """Give every target layer its own forward back."""
        for module in self.loras():
            module.remove()

    def set_multiplier(self, multiplier: float) -> None:
        for module in self.loras():
            module.multiplier = multiplier

    @torch.no_grad()
    def merge(self) -> None:
        """Fold every adapter's weight change into its layer (the layers then run without adapters)."""
        for module in self.loras():
            module.merge()

    def param_groups(self, unet_lr: float | None, text_encoder_lr: float | None,
                     default_lr: float | None, loraplus: LoRAPlus | None = None) -> list[dict]:
        """Optimizer groups as sd-scripts makes them: text encoder first, then U-Net.

        A part's lr falls back to ``default_lr`` when None; a group whose lr is then 0 or None is left
        out and its parameters stop requiring gradients (they are still saved, unchanged). ``loraplus``
        gives ``lora_up`` its own faster group; block lr weights (``self.blocks``) split the U-Net per
        block (see ``param_groups.py``).
        """
        groups = build_param_groups(self.text_encoder_loras, self.unet_loras,
                                    default_lr if text_encoder_lr is None else text_encoder_lr,
                                    default_lr if unet_lr is None else unet_lr, loraplus, self.blocks)
        if not groups:
            raise NetworkError(f"no LoRA parameters to train: learning rates unet={unet_lr}, "
                               f"text_encoder={text_encoder_lr}, default={default_lr}")
        return groups

    # ------------------------------------------------------------------ weights

    def load_weights(self, source: WeightsSource) -> LoadResult:
        """Load a kohya file (or its tensors) into the adapters; names matching no layer are an error."""
        modules, label = _read_modules(source)
        return self.load_modules(modules, label)

    @torch.no_grad()
    def load_modules(self, modules: Mapping[str, ModuleWeights], label: str = "state dict") -> LoadResult:
        """Load already grouped module weights (see ``lora_file.group_modules``)."""
        unknown = [n for n in modules if n not in self.known_names]
        if unknown:
            raise LoRAFileError(f"{label}: {len(unknown)} LoRA module(s) match no layer of this {self.family} model: "
                                f"{few(unknown)}")
        own: dict[str, Adapter] = dict(self.named_children())  # type: ignore[arg-type]
        for name, weights in modules.items():
            if name in own:
                load_adapter(own[name], weights, label)
        return LoadResult(
            loaded=sum(1 for n in modules if n in own),
            skipped=tuple(sorted(n for n in modules if n not in own)),
            missing=tuple(sorted(n for n in own if n not in modules)),
        )


def _read_modules(source: WeightsSource) -> tuple[dict[str, ModuleWeights], str]:
    if isinstance(source, Mapping):
        return group_modules(source, "state dict"), "state dict"
    label = str(source)
    return group_modules(read_lora(source)[0], label), label


def _candidate_targets(unet: UNetModel | None, text_encoders: Sequence[nn.Module], family: str,
                       config: NetworkConfig) -> dict[str, list[LoRATarget]]:
    """Every layer that could carry a LoRA (LoCon layers included), per part."""
    prefixes = text_encoder_prefixes(family)
    if config.train_unet and unet is None:
        raise NetworkError("train_unet is on but no U-Net was given")
    if config.train_text_encoder and len(text_encoders) != len(prefixes):
        raise NetworkError(f"a {family} model has {len(prefixes)} text encoder(s); got {len(text_encoders)}")
    unet_part = [] if unet is None else unet_targets(unet, family, include_locon=True)
    te_part = []
    if len(text_encoders) == len(prefixes):
        for prefix, encoder in zip(prefixes, text_encoders):
            te_part += text_encoder_targets(encoder, prefix)
    return {"unet": unet_part, "te": te_part}


def create_network(unet: UNetModel | None, text_encoders: Sequence[nn.Module], family: str, network_dim: int,
                   network_alpha: float | None, conv_dim: int | None = None, conv_alpha: float | None = None,
                   dropout: float = 0.0, rank_dropout: float = 0.0, module_dropout: float = 0.0,
                   train_unet: bool = True, train_text_encoder: bool = True,
                   multiplier: float = 1.0, blocks: BlockOptions | None = None,
                   adapter: AdapterSpec | None = None) -> LoRANetwork:
    """A fresh LoRA (or LoCon, with ``conv_dim``) network; call ``.apply()`` to activate it.

    ``family`` is ``sd1``, ``sd2`` or ``sdxl``; ``text_encoders`` are the model's encoders in order
    (one, or two for SDXL). New adapters change nothing until trained (``lora_up`` starts at zero).
    ``blocks`` sets U-Net ranks and lr weights per block (``blocks.py``; BlockError when malformed).
    ``adapter`` picks the module kind (LoHa, LoKr, DoRA; default LoRA/LoCon).
    """
    config = NetworkConfig(network_dim, network_alpha, conv_dim, conv_alpha, dropout, rank_dropout, module_dropout,
                           train_unet, train_text_encoder, multiplier, adapter or AdapterSpec())
    plan = block_plan(blocks or BlockOptions(), check_family(family), network_dim, network_alpha, conv_dim, conv_alpha)
    return LoRANetwork(unet, text_encoders, family, config, blocks=plan)


def create_network_from_weights(unet: UNetModel | None, text_encoders: Sequence[nn.Module], family: str,
                                weights: WeightsSource, dropout: float = 0.0, rank_dropout: float = 0.0,
                                module_dropout: float = 0.0, train_unet: bool = True,
                                train_text_encoder: bool = True, multiplier: float = 1.0,
                                blocks: BlockOptions | None = None) -> LoRANetwork:
    """Continue training from a kohya LoRA/LoCon file: ranks and alphas come from the file.

    Every module in the file is created with its own rank/alpha; target layers the file lacks get
    the file's most common rank/alpha; LoCon is on exactly when the file has kxk convolutions. The
    module kind (LoRA, LoHa, LoKr, with or without DoRA) is the file's.
    With ``blocks``, the layers the file lacks get their block's rank instead (rank 0: none), and the
    lr weights apply as in ``create_network``.
    """
    modules, label = _read_modules(weights)
    dims = lora_dims(modules)
    fallback_dim = dims.network_dim or dims.conv_dim
    assert fallback_dim is not None  # group_modules rejects a file without modules, so one of them is set
    fallback_alpha = dims.network_alpha if dims.network_dim else dims.conv_alpha
    config = NetworkConfig(fallback_dim, fallback_alpha, dims.conv_dim, dims.conv_alpha, dropout, rank_dropout,
                           module_dropout, train_unet, train_text_encoder, multiplier, spec_of_file(modules, label))
    module_dims = {name: (m.rank, m.alpha if m.alpha is not None else float(m.rank)) for name, m in modules.items()}
    plan = block_plan(blocks or BlockOptions(), check_family(family), fallback_dim, fallback_alpha, dims.conv_dim,
                      dims.conv_alpha)
    network = LoRANetwork(unet, text_encoders, family, config, module_dims, blocks=plan)
    network.load_modules(modules, label)
    return network
