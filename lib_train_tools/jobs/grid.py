"""The hyperparameter grid: several values for a few options queue one run per combination.

Any of `GRID_KEYS` (the registry's options declared with a `grid` role) may hold a list of values
(comma lists for numbers such as "1e-4, 5e-4", a multi-select for optimizers). `parse_grid_values`
checks each value against the trainer's parameter registry (type, range, choices); `expand_grid`
makes every combination and names each run from the options that differ:
``-bs-2-ep-10-op-AdamW-lr-0_0005-net-16-ap-8`` (abbreviations in `GRID_KEYS` order, ``.`` written as
``_`` so the name works as a file name).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..train.config import coerce_value
from ..train.config_checks import value_problems
from ..train.params import GRID_KEYS, get_param

__all__ = [
    "GRID_KEYS", "MAX_GRID_RUNS", "GridError", "GridRun", "expand_grid", "format_grid_value", "grid_suffix",
    "parse_grid_values",
]

MAX_GRID_RUNS = 64
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_+]")


class GridError(ValueError):
    """Grid values that cannot be used; ``problems`` lists every one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("grid values: " + "; ".join(self.problems))


@dataclass(frozen=True)
class GridRun:
    """One combination: the full settings of the run, the grid values that differ, the name suffix."""

    config: dict = field(default_factory=dict)
    differing: dict = field(default_factory=dict)
    suffix: str = ""


def parse_grid_values(name: str, text_or_list: str | Iterable[Any]) -> list:
    """The values of one grid option, converted to the registry type; duplicates dropped.

    ``text_or_list`` is comma-separated text ("1e-4, 5e-4") or a list (a multi-select; its items
    may themselves be comma lists). Empty text gives an empty list: the option is not a grid axis.
    Raises GridError naming every value that is not valid for the option.
    """
    if name not in GRID_KEYS:
        raise GridError([f"{name} cannot hold several values; grid options are {', '.join(GRID_KEYS)}"])
    param = get_param(name)
    values, problems = [], []
    for item in _split(text_or_list):
        try:
            value = coerce_value(param, item, [])
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if value is None:
            problems.append(f"{name}: an empty value cannot be one of several values")
            continue
        found = value_problems(param, value)
        if found:
            problems += found
        elif value not in values:
            values.append(value)
    if problems:
        raise GridError(problems)
    return values


def _split(text_or_list: str | Iterable[Any]) -> list[Any]:
    items = [text_or_list] if isinstance(text_or_list, str) else list(text_or_list)
    out = []
    for item in items:
        if isinstance(item, str):
            out += [part.strip() for part in item.split(",") if part.strip()]
        elif item is not None:
            out.append(item)
    return out


def expand_grid(base: Mapping[str, Any], axes: Mapping[str, list]) -> list[GridRun]:
    """Every combination of the axes over ``base`` (later axes vary fastest, in GRID_KEYS order).

    An axis with one value just sets that option; an empty axis is ignored. Only axes with
    several values appear in ``differing`` and in the name suffix.
    """
    unknown = [name for name in axes if name not in GRID_KEYS]
    if unknown:
        raise GridError([f"{name} cannot hold several values" for name in unknown])
    used = [(name, list(axes[name])) for name in GRID_KEYS if axes.get(name)]
    count = 1
    for _, values in used:
        count *= len(values)
    if count > MAX_GRID_RUNS:
        raise GridError([f"these values make {count} runs; at most {MAX_GRID_RUNS} can be queued at once"])
    varying = [name for name, values in used if len(values) > 1]
    runs = []
    for combo in itertools.product(*(values for _, values in used)):
        chosen = dict(zip((name for name, _ in used), combo))
        differing = {name: chosen[name] for name in varying}
        runs.append(GridRun(config={**dict(base), **chosen}, differing=differing, suffix=grid_suffix(differing)))
    return runs


def grid_suffix(differing: Mapping[str, Any]) -> str:
    """``-bs-2-lr-0_0005``: abbreviation and value of each differing option, in GRID_KEYS order."""
    parts = [f"-{GRID_KEYS[name]}-{format_grid_value(differing[name])}" for name in GRID_KEYS if name in differing]
    return "".join(parts)


def format_grid_value(value: Any) -> str:
    """A value as it appears in a run name: plain decimals (no exponent), ``.`` -> ``_``."""
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    else:
        text = str(value)
    return _UNSAFE_NAME_CHARS.sub("_", text)
