"""The parameter registry: the one list of every training option.

`PARAMS` is read by the config loader (TOML and command line), the UI and the LoRA metadata writer;
no other module declares an option. The entries live in `params_*.py` by group; this module joins
them, checks that names are unique, and offers look-ups. Importing it does not import torch.
"""

from __future__ import annotations

from collections import Counter

from .params_model_data import DATASET_PARAMS, MODEL_PARAMS
from .params_output import ADVANCED_PARAMS, SAMPLE_SAMPLERS, SAMPLING_PARAMS, SAVING_PARAMS
from .params_spec import GROUPS, LIST_OF_STR, UI_KINDS, Param
from .params_training import (
    LR_SCHEDULER_NAMES,
    NETWORK_PARAMS,
    OPTIMIZER_NAMES,
    OPTIMIZER_PARAMS,
    TRAINING_PARAMS,
)

__all__ = [
    "GROUPS", "LIST_OF_STR", "LR_SCHEDULER_NAMES", "OPTIMIZER_NAMES", "PARAMS", "PARAMS_BY_NAME",
    "SAMPLE_SAMPLERS", "UI_KINDS", "Param", "get_param", "network_arg_params", "params_in_group",
]


def _join(*groups: tuple[Param, ...]) -> tuple[Param, ...]:
    joined = tuple(p for group in groups for p in group)
    counts = Counter(p.name for p in joined)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"parameter registry declares these names twice: {duplicates}")
    return joined


PARAMS: tuple[Param, ...] = _join(
    MODEL_PARAMS, DATASET_PARAMS, NETWORK_PARAMS, OPTIMIZER_PARAMS, TRAINING_PARAMS,
    SAVING_PARAMS, SAMPLING_PARAMS, ADVANCED_PARAMS,
)
PARAMS_BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}


def get_param(name: str) -> Param:
    """The registry entry called `name`; KeyError naming the unknown option otherwise."""
    try:
        return PARAMS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"no training option is called {name!r}") from None


def params_in_group(group: str) -> tuple[Param, ...]:
    """Entries of one group, in declaration order (the order the UI shows them)."""
    if group not in GROUPS:
        raise KeyError(f"no parameter group is called {group!r}; groups: {', '.join(GROUPS)}")
    return tuple(p for p in PARAMS if p.group == group)


def network_arg_params() -> dict[str, Param]:
    """Options that sd-scripts passes inside `network_args`, keyed by their key there."""
    return {p.network_arg: p for p in PARAMS if p.network_arg}
