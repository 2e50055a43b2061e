"""The Train settings form, generated from the trainer's registry and the run settings.

Which options the form shows, and in which section, is listed here by name only; each field's
label, help, type, choices, range and default come from the option's ``Param`` record
(``train/params.py``, or ``jobs/run_config.RUN_PARAMS`` for the tab's own settings such as the
base model and repeats). The tab's defaults (``TAB_DEFAULTS``) win over the registry's where the
job applies them. Values move between the form and ``settings.json`` through ``display_value``
and ``setting_value``, which converts and validates with the trainer's own rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..jobs.grid_settings import GRID_SETTINGS, stored_grid_values
from ..train.config import coerce_value
from ..train.config_checks import value_problems
from ..train.params import PARAMS_BY_NAME, Param, get_param
from .replies import NO_CHANGE, Update

UNSET_CHOICE = "(default)"
GRID_SECTION = "Several values: one run per combination (grid)"
GRID_KINDS = ("grid", "multiselect")  # grid_<option> settings: comma list, or several choices

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Base model and network", (
        "base_model", "network_type", "network_dim", "network_alpha", "conv_dim", "conv_alpha",
        "mixed_precision", "clip_skip",
    )),
    ("Dataset and steps", (
        "resolution", "enable_bucket", "min_bucket_reso", "max_bucket_reso", "repeats", "train_batch_size",
        "max_train_epochs", "save_every_n_epochs",
    )),
    ("Learning rate and optimizer", (
        "optimizer_type", "learning_rate", "unet_lr", "text_encoder_lr", "lr_scheduler", "lr_warmup_steps",
        "lr_scheduler_num_cycles",
    )),
    ("Captions and augmentation", (
        "shuffle_caption", "keep_tokens", "flip_aug", "caption_dropout_rate", "caption_tag_dropout_rate",
    )),
    ("Memory, noise and loss", (
        "gradient_checkpointing", "cache_latents", "noise_offset", "min_snr_gamma", "seed",
    )),
    ("Samples and previews", (
        "sample_prompt", "sample_every_n_epochs", "sample_sampler", "preview_all_epochs",
    )),
    (GRID_SECTION, tuple(GRID_SETTINGS)),
)
STEP_FIELDS = ("repeats", "max_train_epochs", "train_batch_size")
LOCON_FIELDS = ("conv_dim", "conv_alpha")


def run_settings() -> tuple[tuple[Param, ...], dict[str, Any], tuple[str, ...]]:
    """(RUN_PARAMS, TAB_DEFAULTS, MANAGED_OPTIONS) from the jobs package; empty while it is missing."""
    try:
        from ..jobs.run_config import MANAGED_OPTIONS, RUN_PARAMS, TAB_DEFAULTS
    except ImportError:
        return (), {}, ()
    return tuple(RUN_PARAMS), dict(TAB_DEFAULTS), tuple(MANAGED_OPTIONS)


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
    def step(self) -> float | None:
        if self.kind != "slider":
            return None
        if self.param.type is int:
            return 1
        return 0.01 if (self.param.max - self.param.min) <= 1 else 0.5

    @property
    def choices(self) -> list[str]:
        if self.kind == "multiselect":
            return [str(c) for c in get_param(GRID_SETTINGS[self.name]).choices]
        if self.kind != "dropdown":
            return []
        names = [str(c) for c in self.param.choices]
        return [UNSET_CHOICE] + names if self.param.optional else names


def _kind(param: Param) -> str:
    if param.name in GRID_SETTINGS:
        return "multiselect" if get_param(GRID_SETTINGS[param.name]).choices else "grid"
    if param.name == "base_model":
        return "checkpoint"
    if param.type is bool:
        return "checkbox"
    if param.choices:
        return "dropdown"
    if param.ui == "slider" and not param.optional:
        return "slider"
    if param.type in (int, float):
        return "number"
    return "textarea" if param.name == "sample_prompt" else "text"


def form_fields() -> list[Field]:
    """Every field of the form, section by section; options nobody declares are left out."""
    run_params, tab_defaults, _ = run_settings()
    declared = dict(PARAMS_BY_NAME)
    declared.update({p.name: p for p in run_params})
    fields = []
    for section, names in SECTIONS:
        for name in names:
            if name in declared:
                param = declared[name]
                fields.append(Field(param, _kind(param), tab_defaults.get(name, param.default), section))
    return fields


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
        raw = next((c for c in param.choices if str(c) == str(raw)), raw)
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
    out = []
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
