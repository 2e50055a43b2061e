"""The `Param` record: how one training option is declared in the registry.

Every option the trainer understands is one `Param`, and the record says everything the rest of the
program needs to know about it: the command line, the TOML loader, the typed `TrainConfig`, the LoRA
metadata writer, the Train tab's form, the grid and the Results tab all read the same records (see
`params.py` for the list and the tables derived from it), so a name, a default or a role is stated
exactly once.

Conventions:
* `type` is `bool`, `int`, `float`, `str` or `list[str]`; in a `TrainConfig` a `list[str]` option is
  held as a tuple so the config stays immutable.
* `default=None` makes an option optional: None means "unset" (for example `clip_skip`, or the
  tri-state `v_parameterization`, where None means "detect from the checkpoint").
* `min`/`max` are inclusive bounds for numbers. `choices` lists the allowed values.
* `ui` is the widget kind on the Train tab: "slider", "dropdown", "checkbox", "text", "number" (and
  "checkpoint", "textarea", "grid", "multiselect" for the tab's own settings); set exactly when
  `form` places the option on the form. Options without it are set in the advanced (TOML) box.
* `form` is the option's place on the Train tab's form (`FORM_SECTIONS` key and rank in it).
* `grid` lets one submission give the option several values (one run each); its abbreviation and
  rank make the part of the run name (``-lr-0_0005``).
* `results_rank` shows the option in the Results tab's run summary, in rank order.
* `tab_default` is what the Train tab uses when a version does not set the option, where that
  differs from the (sd-scripts-compatible) `default`; `NOT_SET` otherwise.
* `managed`: the job sets the option for every run (folders, names); a version's value is not used.
  `stand_in` is the value the settings check uses in its place.
* `path`: the value is a file or folder; shared LoRA metadata keeps only its base name.
* `kohya_key` is the `ss_*` key under which sd-scripts records the option in a LoRA's metadata.
* `network_arg` names the key under which sd-scripts passes this option inside `network_args`
  (["conv_dim=8", ...]); such options are read from and written back into that list.
* `normalise(value, warnings)` brings another spelling sd-scripts accepts to the registry type before
  conversion; `canonical(value)` adjusts the converted value (both optional).
* `note` marks an option accepted only for sd-scripts compatibility; setting it to a non-default
  value yields this note as a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GROUPS = ("model", "dataset", "network", "optimizer", "training", "saving", "sampling", "advanced")
FORM_KINDS = ("slider", "dropdown", "checkbox", "text", "number")
TAB_KINDS = ("checkpoint", "textarea", "grid", "multiselect")  # the tab's own settings only
UI_KINDS = FORM_KINDS + TAB_KINDS + (None,)
LIST_OF_STR = list[str]
PARAM_TYPES = (bool, int, float, str, LIST_OF_STR)
# Sections of the Train tab's form, in page order: key -> title.
FORM_SECTIONS: dict[str, str] = {
    "network": "Base model and network",
    "dataset": "Dataset and steps",
    "optimizer": "Learning rate and optimizer",
    "captions": "Captions and augmentation",
    "memory": "Memory, noise and loss",
    "samples": "Samples and previews",
    "grid": "Several values: one run per combination (grid)",
}

Normalise = Callable[[Any, list], Any]
Canonical = Callable[[Any], Any]


class _NotSet:
    """The "no tab default" marker (None is a value a tab default could have)."""

    def __repr__(self) -> str:
        return "NOT_SET"


NOT_SET: Any = _NotSet()


@dataclass(frozen=True)
class Form:
    """Where the Train tab's form shows an option: a `FORM_SECTIONS` key, and its place in that section."""

    section: str
    rank: int
    label: str | None = None  # the option in words; the form shows "words (option_name)"


@dataclass(frozen=True)
class Grid:
    """An option that may take several values in one submission; `abbrev` and `rank` place it in run names."""

    abbrev: str
    rank: int


@dataclass(frozen=True)
class Param:
    """One training option: its name, type, default, help text and every role it has."""

    name: str
    type: Any
    default: Any
    help: str
    group: str
    ui: str | None = None
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    network_arg: str | None = None
    note: str | None = None
    form: Form | None = None
    grid: Grid | None = None
    results_rank: int | None = None
    tab_default: Any = NOT_SET
    managed: bool = False
    stand_in: str | None = None
    path: bool = False
    kohya_key: str | None = None
    normalise: Normalise | None = None
    canonical: Canonical | None = None

    def __post_init__(self) -> None:
        problems = _spec_problems(self) + _role_problems(self)
        if problems:
            raise ValueError(f"parameter {self.name!r} is declared wrongly: " + "; ".join(problems))

    @property
    def optional(self) -> bool:
        """True when None ("unset") is an allowed value."""
        return self.default is None

    @property
    def is_list(self) -> bool:
        return self.type == LIST_OF_STR

    @property
    def tab_value(self) -> Any:
        """What the Train tab uses when a version does not set the option."""
        return self.default if self.tab_default is NOT_SET else self.tab_default


def _spec_problems(p: Param) -> list[str]:
    """Self-consistency of a declaration, so a typo in the registry fails at import time."""
    problems = []
    if p.type not in PARAM_TYPES:
        problems.append(f"type {p.type!r} is not one of bool/int/float/str/list[str]")
    if p.group not in GROUPS:
        problems.append(f"group {p.group!r} is not one of {GROUPS}")
    if p.ui not in UI_KINDS:
        problems.append(f"ui {p.ui!r} is not one of {UI_KINDS}")
    if p.ui == "slider" and (p.min is None or p.max is None):
        problems.append("a slider needs min and max")
    if p.ui == "dropdown" and not p.choices:
        problems.append("a dropdown needs choices")
    if p.type == LIST_OF_STR and p.default != ():
        problems.append("a list option defaults to the empty tuple")
    problems += _value_type_problems(p, p.default, "default")
    if p.choices and p.default is not None and p.default not in p.choices:
        problems.append(f"default {p.default!r} is not among the choices")
    return problems


def _value_type_problems(p: Param, value: Any, what: str) -> list[str]:
    if value is None or p.type not in (bool, int, float, str):
        return []
    allowed = (int, float) if p.type is float else (p.type,)
    if not isinstance(value, allowed) or (p.type is not bool and isinstance(value, bool)):
        return [f"{what} {value!r} is not a {p.type.__name__}"]
    return []


def _role_problems(p: Param) -> list[str]:
    """The roles (form, grid, tab default, managed, path, metadata key) fit the option and each other."""
    problems = []
    if (p.ui is None) != (p.form is None):
        problems.append("ui and form go together: an option on the form needs a ui kind, and only those")
    if p.form is not None and p.form.section not in FORM_SECTIONS:
        problems.append(f"form section {p.form.section!r} is not one of {tuple(FORM_SECTIONS)}")
    if p.grid is not None and (not p.grid.abbrev.isalnum() or p.is_list or p.type is bool):
        problems.append("a grid option is a single number or text, abbreviated by letters and digits")
    if p.tab_default is not NOT_SET:
        problems += _value_type_problems(p, p.tab_default, "tab default")
        if p.choices and p.tab_default is not None and p.tab_default not in p.choices:
            problems.append(f"tab default {p.tab_default!r} is not among the choices")
        if p.tab_default == p.default:
            problems.append("a tab default that equals the default says nothing")
    if p.managed and (p.form is not None or p.tab_default is not NOT_SET):
        problems.append("an option the job sets is neither on the form nor given a tab default")
    if p.stand_in is not None and not p.managed:
        problems.append("only an option the job sets (managed) has a stand-in for the settings check")
    if p.path and p.type is not str:
        problems.append("a path option holds text")
    if p.kohya_key is not None and not p.kohya_key.startswith("ss_"):
        problems.append(f"kohya key {p.kohya_key!r} does not start with ss_")
    return problems
