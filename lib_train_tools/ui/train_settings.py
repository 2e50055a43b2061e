"""Rules behind the Train tab that are not about widgets: the advanced TOML box, whole-settings
checks, the step arithmetic and the base model's detected architecture. Plain functions.

The advanced box holds every trainer option the version sets that the form does not show, as
TOML. Applying it replaces exactly those options (a key removed from the box is unset). Options
the job sets for every run (data folder, output folder, base model path, ...) are refused there.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..datasets.repeats import original_tab_repeats, set_repeats, step_count
from ..jobs.job import JobError
from ..jobs.run_options import trainer_options
from ..projects.layout import VersionPaths
from ..train.config import ConfigError, coerce_value, load_config
from ..train.config_checks import value_problems
from ..train.config_toml import flatten_tables, load_toml_text, toml_value
from ..train.params import MANAGED_OPTIONS, PARAMS_BY_NAME
from .train_form import form_fields

ADVANCED_SOURCE = "the advanced box"


def advanced_names(settings: Mapping[str, Any]) -> list[str]:
    """Trainer options set in ``settings`` that the form does not show."""
    shown = {f.name for f in form_fields()}
    return [k for k in settings
            if k in PARAMS_BY_NAME and k not in shown and k not in MANAGED_OPTIONS and settings[k] is not None]


def advanced_toml(settings: Mapping[str, Any]) -> str:
    names = sorted(advanced_names(settings))
    return "".join(f"{name} = {toml_value(_plain(settings[name]))}\n" for name in names)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def parse_advanced(text: str) -> dict[str, Any]:
    """Options from the advanced box, converted and checked; ConfigError listing every problem."""
    doc = load_toml_text(text or "", ADVANCED_SOURCE)
    flat, _ = flatten_tables(doc, PARAMS_BY_NAME)
    problems, values = [], {}
    for key, raw in flat.items():
        if key not in PARAMS_BY_NAME:
            problems.append(f"{key} is not a training option (the trainer's --help lists them)")
        elif key in MANAGED_OPTIONS:
            problems.append(f"{key} is set by Train Tools for every run; remove it from the box")
        else:
            try:
                value = coerce_value(PARAMS_BY_NAME[key], raw, [])
            except ValueError as exc:
                problems.append(str(exc))
                continue
            problems += value_problems(PARAMS_BY_NAME[key], value)
            values[key] = _plain(value)
    if problems:
        raise ConfigError(problems, ADVANCED_SOURCE)
    return values


def replace_advanced(settings: Mapping[str, Any], parsed: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with the advanced options replaced by ``parsed``."""
    result = {k: v for k, v in settings.items() if k not in advanced_names(settings)}
    result.update(parsed)
    return result


def settings_problems(settings: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the settings taken together, as the trainer would report them for a run
    (the folders each run gets are stand-ins here)."""
    try:
        _, warnings = load_config(overrides=trainer_options(settings))
    except ConfigError as exc:
        return exc.problems, []
    except JobError as exc:  # a network type the job cannot train
        return [str(exc)], []
    return [], warnings


def step_summary(images: int, repeats: Any, epochs: Any, batch: Any, max_steps: Any) -> str:
    """'6 images × 10 repeats = 60 samples ÷ batch 2 = 30 steps per epoch × 5 epochs = 150 steps'."""
    if images < 1:
        return "No training images yet: preprocess the dataset to see the steps."
    try:
        repeats = int(repeats) if repeats not in (None, "") else original_tab_repeats(images)
        batch = int(batch) if batch not in (None, "") else 1
        count = step_count(images, repeats, int(epochs) if epochs not in (None, "") else 1, batch)
    except (TypeError, ValueError) as exc:
        return f"Steps cannot be computed: {exc}"
    head = (f"{images} images × {repeats} repeats = {images * repeats} samples ÷ batch {batch} = "
            f"{count.steps_per_epoch} steps per epoch")
    if epochs in (None, ""):
        return f"{head}; no epoch count set, so training stops after max_train_steps = {max_steps} steps"
    hint = "" if count.in_guide_range else " (guides aim at 250-1000 steps)"
    return f"{head} × {int(epochs)} epochs = {count.total_steps} steps{hint}"


def version_repeats(version: VersionPaths, settings: Mapping[str, Any]) -> int | None:
    """The repeats the form shows: the setting, else the processed folder's."""
    value = settings.get("repeats")
    return value if isinstance(value, int) else version.processed_repeats()


def apply_repeats(version: VersionPaths, repeats: Any) -> str | None:
    """Rename the processed folder to the new repeats; returns the new folder name, if any."""
    if not isinstance(repeats, int) or version.processed_dir() is None or version.processed_repeats() == repeats:
        return None
    return set_repeats(version, repeats)


def architecture_text(checkpoints: Mapping[str, Any], base_model: str | None) -> str:
    """The detected family and layout of the chosen base model, or why it cannot be read."""
    if not base_model:
        return "No base model chosen."
    from ..models.loader import load_architecture  # needs torch; only when a model is chosen

    path = checkpoints.get(base_model, base_model)
    try:
        return f"Detected: {load_architecture(path).describe()}"
    except Exception as exc:  # any unreadable file is reported in the page
        return f"Cannot read {base_model}: {exc}"
