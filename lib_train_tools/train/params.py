"""The parameter registry: the one list of every training option, and the tables derived from it.

`PARAMS` is read by the config loader (TOML and command line), the typed `TrainConfig`
(``train_config.py``, generated from it), the LoRA metadata writer, the Train tab and the jobs; no
other module declares an option. The entries live in `params_*.py` by theme; this module joins them,
checks that names are unique, and offers look-ups and the views other modules need (which options
are paths, which have an sd-scripts metadata key, which form a grid, ...). Each view is computed from
the `Param` records, so declaring an option's role on its record is all it takes. Importing this
module does not import torch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from .params_dataset import DATASET_PARAMS
from .params_model import MODEL_PARAMS
from .params_network import NETWORK_PARAMS
from .params_noise import NOISE_PARAMS
from .params_optimizer import LR_SCHEDULER_NAMES, OPTIMIZER_NAMES, OPTIMIZER_PARAMS
from .params_output import LOGGING_PARAMS, SAMPLE_SAMPLERS, SAMPLING_PARAMS, SAVING_PARAMS
from .params_spec import FORM_SECTIONS, GROUPS, LIST_OF_STR, NOT_SET, TAB_KINDS, UI_KINDS, Form, Grid, Param
from .params_training import TRAINING_PARAMS

__all__ = [
    "CHECK_STAND_INS", "FORM_SECTIONS", "GRID_KEYS", "GROUPS", "KOHYA_KEYS", "LIST_OF_STR", "LR_SCHEDULER_NAMES",
    "MANAGED_OPTIONS", "NOT_SET", "OPTIMIZER_NAMES", "PARAMS", "PARAMS_BY_NAME", "PATH_OPTIONS", "RESULTS_SETTINGS",
    "SAMPLE_SAMPLERS", "TAB_DEFAULTS", "TAB_KINDS", "UI_KINDS", "Form", "Grid", "Param", "form_layout", "get_param",
    "network_arg_params", "params_in_group",
]


def _join(*groups: tuple[Param, ...]) -> tuple[Param, ...]:
    joined = tuple(p for group in groups for p in group)
    counts = Counter(p.name for p in joined)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"parameter registry declares these names twice: {duplicates}")
    return joined


# The join order is the order of TrainConfig's fields, the command line and the TOML tables.
PARAMS: tuple[Param, ...] = _join(
    MODEL_PARAMS, DATASET_PARAMS, NETWORK_PARAMS, OPTIMIZER_PARAMS, TRAINING_PARAMS,
    SAVING_PARAMS, SAMPLING_PARAMS, NOISE_PARAMS, LOGGING_PARAMS,
)
PARAMS_BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}


def get_param(name: str) -> Param:
    """The registry entry called `name`; KeyError naming the unknown option otherwise."""
    try:
        return PARAMS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"no training option is called {name!r}") from None


def params_in_group(group: str) -> tuple[Param, ...]:
    """Entries of one group, in declaration order."""
    if group not in GROUPS:
        raise KeyError(f"no parameter group is called {group!r}; groups: {', '.join(GROUPS)}")
    return tuple(p for p in PARAMS if p.group == group)


def network_arg_params() -> dict[str, Param]:
    """Options that sd-scripts passes inside `network_args`, keyed by their key there."""
    return {p.network_arg: p for p in PARAMS if p.network_arg}


def _ranked(pairs: Iterable[tuple[Any, Param]], what: str) -> list[Param]:
    """The params of (rank, param) pairs that have a rank, in rank order; ValueError when two share one."""
    chosen = [(rank, p) for rank, p in pairs if rank is not None]
    counts = Counter(rank for rank, _ in chosen)
    clashes = sorted(p.name for rank, p in chosen if counts[rank] > 1)
    if clashes:
        raise ValueError(f"{what}: these options share a rank: {clashes}")
    return [p for _, p in sorted(chosen, key=lambda pair: pair[0])]


def form_layout(extra_params: Iterable[Param] = ()) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The Train tab's form: (section title, option names in rank order) per `FORM_SECTIONS` entry
    that has any, for the registry's options plus `extra_params` (the tab's own settings)."""
    everything = PARAMS + tuple(extra_params)
    layout = []
    for key, title in FORM_SECTIONS.items():
        pairs = [(p.form.rank, p) for p in everything if p.form is not None and p.form.section == key]
        names = tuple(p.name for p in _ranked(pairs, f"form section {key!r}"))
        if names:
            layout.append((title, names))
    return tuple(layout)


# Options holding a file or folder path; LoRA metadata keeps only their base names by default.
PATH_OPTIONS: tuple[str, ...] = tuple(p.name for p in PARAMS if p.path)
# sd-scripts' LoRA metadata key -> the option whose value it records.
KOHYA_KEYS: dict[str, str] = {p.kohya_key: p.name for p in PARAMS if p.kohya_key}
# Option -> abbreviation in run names, in the order the parts appear in a name.
GRID_KEYS: dict[str, str] = {
    p.name: p.grid.abbrev for p in _ranked(((p.grid.rank, p) for p in PARAMS if p.grid is not None), "grid")
    if p.grid is not None
}
# The options a person compares between runs in the Results tab, in the order shown.
RESULTS_SETTINGS: tuple[str, ...] = tuple(p.name for p in _ranked(((p.results_rank, p) for p in PARAMS), "results"))
# Options whose Train tab default differs from the registry's (sd-scripts-compatible) default.
TAB_DEFAULTS: dict[str, Any] = {p.name: p.tab_default for p in PARAMS if p.tab_default is not NOT_SET}
# Options the job sets for every run; a version's value for them is not used.
MANAGED_OPTIONS: tuple[str, ...] = tuple(p.name for p in PARAMS if p.managed)
# What the settings check puts in place of the managed options that must be set, so that it reports only
# what a person can change.
CHECK_STAND_INS: dict[str, str] = {p.name: p.stand_in for p in PARAMS if p.stand_in is not None}
