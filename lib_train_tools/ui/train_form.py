"""The Train settings form, generated from the trainer's registry and the run settings.

Which options the form shows, in which section and order, is each option's ``form`` slot in its
``Param`` record (``train/params*.py``, or ``jobs/run_options.RUN_PARAMS`` for the tab's own settings
such as the base model and repeats); so are each field's label, help, kind, choices, range and
default. The tab's defaults (``Param.tab_default``) win over the registry's where the job applies
them. Values move between the form and ``settings.json`` through ``display_value`` and
``setting_value``, which converts and validates with the trainer's own rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..jobs.grid_settings import GRID_SETTINGS, stored_grid_values
from ..jobs.run_options import RUN_PARAMS, RUN_PARAMS_BY_NAME
from ..train.config import coerce_value
from ..train.config_checks import value_problems
from ..train.params import FORM_SECTIONS, PARAMS_BY_NAME, TAB_KINDS, Param, form_layout, get_param
from .replies import NO_CHANGE, Update

UNSET_CHOICE = "(default)"
GRID_SECTION = FORM_SECTIONS["grid"]
GRID_KINDS = ("grid", "multiselect")  # grid_<option> settings: comma list, or several choices

# (section title, field names) in page order, from the form slots of the registry and the run settings.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = form_layout(RUN_PARAMS)
STEP_FIELDS = ("repeats", "max_train_epochs", "train_batch_size")


@dataclass(frozen=True)
class Field:
    param: Param
    kind: str  # checkpoint, checkbox, dropdown, slider, number, text, textarea, grid, multiselect
    default: Any  # what the form shows when the version has no value
    section: str

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def label(self) -> str:
        """The field's name in words, with the option's name (what the CLI, TOML and guides call it)."""
        form = self.param.form
        return f"{form.label} ({self.param.name})" if form is not None and form.label else self.param.name

    @property
    def step(self) -> float | None:
        if self.kind != "slider":
            return None
        if self.param.type is int:
            return 1
        low, high = self.param.min or 0.0, self.param.max or 0.0  # a slider has both (params_spec checks it)
        return 0.01 if (high - low) <= 1 else 0.5

    @property
    def choices(self) -> list[str]:
        if self.kind == "multiselect":
            return [str(c) for c in get_param(GRID_SETTINGS[self.name]).choices or ()]
        if self.kind != "dropdown":
            return []
        names = [str(c) for c in self.param.choices or ()]
        return [UNSET_CHOICE] + names if self.param.optional else names


def _kind(param: Param) -> str:
    if param.ui in TAB_KINDS:
        return param.ui
    if param.type is bool:
        return "checkbox"
    if param.choices:
        return "dropdown"
    if param.ui == "slider" and not param.optional:
        return "slider"
    if param.type in (int, float):
        return "number"
    return "text"


def form_fields() -> list[Field]:
    """Every field of the form, section by section."""
    declared = {**PARAMS_BY_NAME, **RUN_PARAMS_BY_NAME}
    return [Field(declared[name], _kind(declared[name]), declared[name].tab_value, section)
            for section, names in SECTIONS for name in names]


def display_value(field: Field, settings: Mapping[str, Any]) -> Any:
    """What the field's component shows for these settings."""
    value = settings.get(field.name, field.default)
    if field.kind == "grid":
        return ", ".join(str(v) for v in value or ())
    if field.kind == "multiselect":
        return [str(v) for v in value or ()]
    if field.kind == "dropdown":
        return UNSET_CHOICE if value is None else str(value)
    if field.kind in ("text", "textarea", "checkpoint"):
        return "" if value is None else str(value)
    if field.kind == "checkbox":
        return bool(value)
    if field.kind == "slider" and value is None:
        return field.param.min
    return value


def setting_value(field: Field, raw: Any) -> Any:
    """The setting for a component's value (None: unset); ValueError saying what is wrong."""
    param = field.param
    if field.kind in GRID_KINDS:
        return stored_grid_values(GRID_SETTINGS[field.name], raw)
    if raw is None or raw == UNSET_CHOICE or (isinstance(raw, str) and not raw.strip()):
        if param.optional:
            return None
        raise ValueError(f"{param.name} must be set (it has no 'unset' value)")
    if field.kind == "dropdown":
        raw = next((c for c in param.choices or () if str(c) == str(raw)), raw)
    if field.kind in ("text", "textarea", "checkpoint") and isinstance(raw, str):
        raw = raw.strip() if field.kind != "textarea" else raw.rstrip()
    value = coerce_value(param, raw, [])
    problems = value_problems(param, value)
    if problems:
        raise ValueError("; ".join(problems))
    return value


def field_values(fields: list[Field], settings: Mapping[str, Any]) -> tuple:
    return tuple(display_value(f, settings) for f in fields)


def same_as_shown(page: Any, wanted: Any) -> bool:
    """Whether the page already shows ``wanted`` (numbers compared as numbers: 5 == 5.0)."""
    if page is None or wanted is None:
        return page is None and wanted is None
    if isinstance(page, bool) or isinstance(wanted, bool):
        return isinstance(page, bool) and isinstance(wanted, bool) and page == wanted
    if isinstance(page, (int, float)) and isinstance(wanted, (int, float)):
        return float(page) == float(wanted)
    if isinstance(page, (list, tuple)) or isinstance(wanted, (list, tuple)):
        return isinstance(page, (list, tuple)) and isinstance(wanted, (list, tuple)) and \
            [str(v) for v in page] == [str(v) for v in wanted]
    return str(page) == str(wanted)


def only_changes(values: tuple, shown: tuple) -> tuple:
    """``values`` for the page, with every value the page already shows left out.

    A reload of the form (opening the tab, choosing a version) answers after a moment; a field
    it sets to the value that was already shown would overwrite what the user typed meanwhile.
    So an unchanged plain value becomes ``NO_CHANGE`` and an unchanged ``Update`` loses its
    ``value`` (its choices or visibility still apply). ``shown`` holds the page's values as the
    reload was asked, one per value.
    """
    if len(values) != len(shown):
        raise ValueError(f"{len(values)} values but {len(shown)} shown values")
    out: list[Any] = []
    for value, page in zip(values, shown):
        wanted = value.get("value") if isinstance(value, Update) else value
        if isinstance(value, Update) and "value" not in value.changes:
            out.append(value)
        elif not same_as_shown(page, wanted):
            out.append(value)
        elif isinstance(value, Update):
            rest = {k: v for k, v in value.changes.items() if k != "value"}
            out.append(Update(rest) if rest else NO_CHANGE)
        else:
            out.append(NO_CHANGE)
    return tuple(out)
