"""The `Param` record: how one training option is declared in the registry.

Every option the trainer understands is one `Param`. The UI, the command line, the TOML loader and the
LoRA metadata writer all read the same records (see `params.py` for the list), so a name, a default or
a range is stated exactly once.

Conventions:
* `type` is `bool`, `int`, `float`, `str` or `list[str]`; in a `TrainConfig` a `list[str]` option is
  held as a tuple so the config stays immutable.
* `default=None` makes an option optional: None means "unset" (for example `clip_skip`, or the
  tri-state `v_parameterization`, where None means "detect from the checkpoint").
* `min`/`max` are inclusive bounds for numbers. `choices` lists the allowed values.
* `ui` is a hint for the WebUI tab: "slider", "dropdown", "checkbox", "text", "number", or None for
  options shown only in the advanced (raw TOML) view.
* `network_arg` names the key under which sd-scripts passes this option inside `network_args`
  (["conv_dim=8", ...]); such options are read from and written back into that list.
* `note` marks an option accepted only for sd-scripts compatibility; setting it to a non-default
  value yields this note as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GROUPS = ("model", "dataset", "network", "optimizer", "training", "saving", "sampling", "advanced")
UI_KINDS = ("slider", "dropdown", "checkbox", "text", "number", None)
LIST_OF_STR = list[str]
PARAM_TYPES = (bool, int, float, str, LIST_OF_STR)


@dataclass(frozen=True)
class Param:
    """One training option: its name, type, default, help text and the hints built on them."""

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

    def __post_init__(self) -> None:
        problems = _spec_problems(self)
        if problems:
            raise ValueError(f"parameter {self.name!r} is declared wrongly: " + "; ".join(problems))

    @property
    def optional(self) -> bool:
        """True when None ("unset") is an allowed value."""
        return self.default is None

    @property
    def is_list(self) -> bool:
        return self.type == LIST_OF_STR


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
    if p.default is not None and p.type in (bool, int, float, str):
        allowed = (int, float) if p.type is float else (p.type,)
        if not isinstance(p.default, allowed) or (p.type is not bool and isinstance(p.default, bool)):
            problems.append(f"default {p.default!r} is not a {p.type.__name__}")
    if p.choices and p.default is not None and p.default not in p.choices:
        problems.append(f"default {p.default!r} is not among the choices")
    return problems
