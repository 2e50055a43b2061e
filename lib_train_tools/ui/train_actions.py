"""Handlers of the Train settings panel (plain functions; no gradio).

``train_view`` gives one value per form field (``train_form.form_fields()`` order) and then
``VIEW_EXTRAS``: the detected architecture, the step arithmetic, the settings check, the
advanced TOML box, the preset list and the list of other versions. Each field is saved on its
own as soon as it is changed (``save_field``), so nothing is lost when switching versions.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import presets
from ..datasets.caption_tokens import long_captions
from ..datasets.image_checks import training_resolution
from ..datasets.small_images import small_images
from ..jobs.run_options import LOCON_OPTIONS, uses_locon
from ..projects import load_settings, save_settings, update_settings
from ..models.detect import Architecture
from ..projects.layout import VersionPaths
from ..projects.refused_entries import accept_fields, refusal_problems, refuse_field, refused_fields
from .gallery import processed_image_count
from .replies import NO_CHANGE, Notice, Reply, Update, choices, ok
from .run_preview import runs_html
from .selection import parse_selection, require_version, selection_key
from .train_form import GRID_KINDS, Field, display_value, form_fields, only_changes, setting_value
from .train_settings import (
    advanced_toml,
    apply_repeats,
    architecture_text,
    parse_advanced,
    replace_advanced,
    settings_problems,
    step_summary,
    version_repeats,
)
from .vram import vram_text

REFUSED_MARK = "⚠ NOT SAVED"  # starts a field's help line while its entry is refused
VIEW_EXTRAS = ("architecture", "steps", "check", "runs", "advanced", "presets", "other_versions")
APPLIED_EXTRAS = VIEW_EXTRAS[:5]


def checkpoint_map(services) -> dict[str, Path]:
    return {c.title: c.path for c in services.host.checkpoints()}


def _field_value(field: Field, settings: Mapping[str, Any], version: VersionPaths, titles: list[str]) -> Any:
    value = display_value(field, settings)
    if field.kind == "checkpoint":
        options = titles + ([value] if value and value not in titles else [])
        return choices(options, value or None)
    if field.name == "repeats" and settings.get("repeats") is None:
        return version.processed_repeats()
    if field.name in LOCON_OPTIONS:
        return Update.of(value=value, visible=uses_locon(settings))
    return value


def _applied(services, version: VersionPaths, settings: Mapping[str, Any]) -> tuple:
    """Field values plus architecture, steps, check and advanced box for ``settings``."""
    checkpoints = checkpoint_map(services)
    titles = list(checkpoints)
    values = tuple(_field_value(f, settings, version, titles) for f in form_fields())
    arch = architecture_text(checkpoints, settings.get("base_model"))
    check = check_html(services, settings, version)
    return values + (_html(arch), steps_html(version, settings), check, runs_html(version, settings),
                     advanced_toml(settings))


def train_view(services, selection: str | None, shown: Sequence[Any] | None = None) -> Reply:
    """The form for the chosen version (empty defaults when none is chosen).

    ``shown``: what the page showed when the reload was asked (one value per form field, then
    the advanced box); values the page already shows are left out, so a field typed into while
    the reload was on its way keeps what the user typed (``train_form.only_changes``).
    """
    if not parse_selection(selection):
        fields = form_fields()
        empty = tuple(Update.of(value=display_value(f, {})) for f in fields)
        values = empty + ("", "", "", "", "")
        lists = (_preset_choices(services), choices([], None))
    else:
        version = require_version(services, selection)
        values = _applied(services, version, load_settings(version))
        lists = (_preset_choices(services), _other_versions(services, selection))
    return Reply(None, _keep_shown(values, shown) + lists)


def _keep_shown(values: tuple, shown: Sequence[Any] | None) -> tuple:
    """``values`` (fields, architecture, steps, check, advanced) less what the page already shows."""
    if shown is None:
        return values
    n = len(values) - len(APPLIED_EXTRAS)
    fields = only_changes(values[:n], tuple(shown[:n]))
    advanced = only_changes(values[-1:], tuple(shown[n:n + 1]))
    return fields + values[n:-1] + advanced


def save_field(services, selection: str, name: str, raw: Any) -> Reply:
    """Save one field; returns the check, what else the field affects (the architecture, the LoCon
    fields) and the field's own marking.

    An entry that cannot be saved is not silently replaced by the previous value: it is recorded as
    refused (``projects.refused_entries``), the field is marked invalid, the check lists it and no
    run is queued until the field holds a valid value."""
    field = next(f for f in form_fields() if f.name == name)
    version = require_version(services, selection)
    try:
        value = setting_value(field, raw)
    except ValueError as exc:
        refuse_field(version, name, str(exc))
        settings = load_settings(version)
        kept = (NO_CHANGE,) * len(extra_output_names(name))
        notice = Notice("error", f"{name} was not saved: {exc}. Training is blocked until it is fixed")
        return Reply(notice, (check_html(services, settings, version),) + kept + (field_marking(field, str(exc)),))
    unchanged = name not in refused_fields(version) and _shown_setting(field, load_settings(version)) == value
    settings = update_settings(version, {name: value})
    accept_fields(version, [name])
    services.store.touch(version)
    if unchanged:  # left without a change: nothing to announce (a status line would hide the last news)
        return Reply(None, (check_html(services, settings, version),) + _extra_outputs(services, name, settings)
                     + (field_marking(field, None),))
    note = ""
    if name == "repeats":
        renamed = apply_repeats(version, value)
        note = f"; the training folder is now {renamed}" if renamed else ""
    shown = "unset" if value is None else repr(value)
    notice = ok(f"{name} = {shown} saved for {version.project}/{version.name}{note}")
    return Reply(notice, (check_html(services, settings, version),) + _extra_outputs(services, name, settings)
                 + (field_marking(field, None),))


def _shown_setting(field: Field, settings: Mapping[str, Any]) -> Any:
    """The setting the field showed before this edit (a marker that equals nothing when unreadable)."""
    try:
        return setting_value(field, display_value(field, settings))
    except ValueError:
        return object()


def field_marking(field: Field, refusal: str | None) -> Update:
    """A form field's help line: the option's help, or, while its entry is refused, why (the help
    line is the one place under a field that both gradio versions let a handler change)."""
    if refusal is None:
        return Update.of(info=field.param.help)
    return Update.of(info=f"{REFUSED_MARK}: {refusal}; the run would not use it, so training is blocked")


def extra_output_names(name: str) -> tuple[str, ...]:
    """What else changes when field ``name`` is saved (in this order after the check)."""
    if name == "base_model":
        return ("architecture",)
    if name == "network_type":
        return LOCON_OPTIONS
    return ()


def _extra_outputs(services, name: str, settings: Mapping[str, Any]) -> tuple:
    if name == "base_model":
        return (_html(architecture_text(checkpoint_map(services), settings.get("base_model"))),)
    if name == "network_type":
        return tuple(Update.of(visible=uses_locon(settings)) for _ in LOCON_OPTIONS)
    return ()


def steps(services, selection: str, repeats: Any, epochs: Any, batch: Any) -> Reply:
    """The step arithmetic for the values being typed (saved or not)."""
    if not parse_selection(selection):
        return Reply(None, ("",))
    version = require_version(services, selection)
    settings = load_settings(version)
    if repeats in (None, ""):
        repeats = version_repeats(version, settings)
    text = step_summary(processed_image_count(version), repeats, epochs, batch, _max_steps(settings))
    return Reply(None, (_html(text),))


def steps_html(version: VersionPaths, settings: Mapping[str, Any]) -> str:
    fields = {f.name: f for f in form_fields()}
    epochs = settings.get("max_train_epochs", fields["max_train_epochs"].default)
    batch = settings.get("train_batch_size", fields["train_batch_size"].default)
    repeats = version_repeats(version, settings)
    return _html(step_summary(processed_image_count(version), repeats, epochs, batch, _max_steps(settings)))


def grid_fields() -> list[Field]:
    return [f for f in form_fields() if f.kind in GRID_KINDS]


def runs(services, selection: str, *typed: Any) -> Reply:
    """The runs *Begin train* would queue with the grid values being typed (one per grid field)."""
    if not parse_selection(selection):
        return Reply(None, ("",))
    version = require_version(services, selection)
    settings = load_settings(version)
    problems = []
    for field, raw in zip(grid_fields(), typed):
        try:
            settings[field.name] = setting_value(field, raw)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
        return Reply(None, (f'<div class="tt-report-refused"><b>Grid values cannot be used</b><ul>{items}</ul></div>',))
    return Reply(None, (runs_html(version, settings),))


def _max_steps(settings: Mapping[str, Any]) -> Any:
    from ..train.params import get_param

    return settings.get("max_train_steps") or get_param("max_train_steps").default


def base_architecture(services, settings: Mapping[str, Any]) -> Architecture | None:
    """The chosen base model's architecture (read from its header); None when none is chosen or it
    cannot be read."""
    if not settings.get("base_model"):
        return None
    from ..models.loader import load_architecture

    path = checkpoint_map(services).get(settings["base_model"], settings["base_model"])
    try:
        return load_architecture(path)
    except Exception:  # the architecture line already says why the file cannot be read
        return None


def check_html(services, settings: Mapping[str, Any], version: VersionPaths | None = None) -> str:
    problems, warnings = settings_problems(settings)
    if version is not None:
        problems = refusal_problems(refused_fields(version)) + problems
    parts = [_list("These settings cannot train yet", problems, "refused"), _list("Notes", warnings, "info"),
             _list("Dataset", dataset_notes(version, settings) if version is not None else [], "info")]
    estimate = vram_text(settings, base_architecture(services, settings))
    if estimate:
        parts.insert(0, _html(estimate))
    if not problems:
        parts.insert(0, _html("Settings check: no problems."))
    return "".join(p for p in parts if p)


def dataset_notes(version: VersionPaths, settings: Mapping[str, Any]) -> list[str]:
    """Images that training enlarges a lot, and captions longer than the token windows (the version's
    saved settings decide both)."""
    notes = [f"{s.name}: {s.note}" for s in small_images(version, training_resolution(settings.get("resolution")))]
    return notes + [f"{c.image}: caption of {c.note}" for c in long_captions(version)]


def refresh_checkpoints(services, current: str | None) -> Reply:
    titles = list(checkpoint_map(services))
    value = current if current else None
    return Reply(None, (choices(titles + ([value] if value and value not in titles else []), value),))


def apply_advanced(services, selection: str, text: str) -> Reply:
    version = require_version(services, selection)
    parsed = parse_advanced(text)
    settings = replace_advanced(load_settings(version), parsed)
    return _save_all(services, version, settings, f"{len(parsed)} advanced option(s) saved")


def save_preset(services, selection: str, name: str) -> Reply:
    version = require_version(services, selection)
    path = presets.save_preset(services.presets_dir, name, load_settings(version))
    return Reply(ok(f"saved preset {path.stem!r} ({path})"), (_preset_choices(services, path.stem),))


def load_preset(services, selection: str, name: str) -> Reply:
    version = require_version(services, selection)
    loaded = presets.load_preset(services.presets_dir, name)
    settings = presets.applied(load_settings(version), loaded)
    return _save_all(services, version, settings, f"loaded preset {name!r}")


def delete_preset(services, name: str) -> Reply:
    presets.delete_preset(services.presets_dir, name)
    return Reply(ok(f"deleted preset {name!r}"), (_preset_choices(services),))


def copy_from_version(services, selection: str, other: str | None) -> Reply:
    """Take the settings of another version (its dataset-bound ones excepted)."""
    version = require_version(services, selection)
    source = require_version(services, other)
    settings = presets.applied(load_settings(version), load_settings(source))
    return _save_all(services, version, settings, f"copied the settings of {source.project}/{source.name}")


def refresh_lists(services, selection: str | None) -> Reply:
    return Reply(None, (_preset_choices(services), _other_versions(services, selection)))


def _save_all(services, version: VersionPaths, settings: dict, what: str) -> Reply:
    save_settings(version, settings)
    accept_fields(version)  # the form is filled again from the saved settings
    services.store.touch(version)
    renamed = apply_repeats(version, settings.get("repeats"))
    note = f"; the training folder is now {renamed}" if renamed else ""
    return Reply(ok(f"{what} for {version.project}/{version.name}{note}"), _applied(services, version, settings))


def _preset_choices(services, value: str | None = None) -> Update:
    return choices(presets.list_presets(services.presets_dir), value)


def _other_versions(services, selection: str | None) -> Update:
    keys = [selection_key(p.name, v.name) for p in services.store.list_projects()
            for v in services.store.list_versions(p.name)]
    return choices([k for k in keys if k != selection], None)


def _html(text: str) -> str:
    return "<p>" + "<br>".join(html.escape(line) for line in text.splitlines()) + "</p>" if text else ""


def _list(title: str, lines: list[str], css: str) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f'<div class="tt-report-{css}"><b>{html.escape(title)}</b><ul>{items}</ul></div>'
