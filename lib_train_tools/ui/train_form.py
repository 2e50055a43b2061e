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

from ..train.config import coerce_value
from ..train.config_checks import value_problems
from ..train.params import PARAMS_BY_NAME, Param

UNSET_CHOICE = "(default)"

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
    kind: str  # checkpoint, checkbox, dropdown, slider, number, text, textarea
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
        if self.kind != "dropdown":
            return []
        names = [str(c) for c in self.param.choices]
        return [UNSET_CHOICE] + names if self.param.optional else names


def _kind(param: Param) -> str:
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
