"""Grid values in a version's settings: ``grid_<option>`` holds several values of one grid option.

A version's settings (``settings.json``) are one flat dict, so each option of `grid.GRID_KEYS`
has its own setting, declared here once as a registry `Param` (and listed in
``run_options.RUN_PARAMS``): ``grid_learning_rate = ["0.0001", "0.0005"]``,
``grid_optimizer_type = ["AdamW", "Lion"]``. The values are kept as the text of each value,
already checked against the option's registry entry; unset (None) or empty means the option is
not a grid axis and the single value of the option itself is used. `settings_runs` turns the
settings into the runs to queue: one per combination, named from the values that differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..train.params import LIST_OF_STR, Form, Param, get_param
from .grid import GRID_KEYS, GridError, GridRun, expand_grid, parse_grid_values

GRID_PREFIX = "grid_"


def grid_setting(option: str) -> str:
    """The setting holding several values of ``option`` (``grid_learning_rate``)."""
    return GRID_PREFIX + option


def _grid_param(option: str) -> Param:
    """The setting of ``option``'s several values, in the form's grid section at the option's grid rank."""
    base = get_param(option)
    example = ", e.g. 1e-4, 5e-4" if option.endswith(("lr", "learning_rate")) else ""
    how = "choose several" if base.choices else f"comma separated{example}"
    rank = base.grid.rank if base.grid is not None else 0
    return Param(grid_setting(option), LIST_OF_STR, (), group=base.group, ui="multiselect" if base.choices else "grid",
                 form=Form("grid", rank, f"{base.form.label if base.form and base.form.label else option}: "
                                          "several values"),
                 help=f"Several values of {option} ({how}): one run for each, and for each combination with "
                      f"the other options given several values. Empty: use {option} as set above.")


GRID_PARAMS: tuple[Param, ...] = tuple(_grid_param(option) for option in GRID_KEYS)
GRID_SETTINGS: dict[str, str] = {grid_setting(option): option for option in GRID_KEYS}  # setting -> option


def stored_grid_values(option: str, raw: str | Iterable[Any] | None) -> list[str] | None:
    """What ``grid_<option>`` saves for typed text or chosen items: the checked values as text,
    or None when there are none. Raises GridError naming every invalid value."""
    if raw is None:
        return None
    values = parse_grid_values(option, raw)
    return [str(v) for v in values] or None


def grid_axes(settings: Mapping[str, Any]) -> dict[str, list]:
    """The grid options the settings give values for, each with its converted values."""
    axes, problems = {}, []
    for setting, option in GRID_SETTINGS.items():
        raw = settings.get(setting)
        if not raw:
            continue
        try:
            axes[option] = parse_grid_values(option, raw)
        except GridError as exc:
            problems += exc.problems
    if problems:
        raise GridError(problems)
    return axes


def settings_runs(settings: Mapping[str, Any]) -> list[GridRun]:
    """The runs a version's settings make: one per combination of its grid values (at least one)."""
    base = {k: v for k, v in settings.items() if k not in GRID_SETTINGS}
    return expand_grid(base, grid_axes(settings))
