"""The settings form is generated from the registry: names, help, choices and ranges, converted both ways."""

from __future__ import annotations

import pytest

from lib_train_tools.train.params import OPTIMIZER_NAMES, PARAMS_BY_NAME, get_param
from lib_train_tools.ui.train_form import SECTIONS, UNSET_CHOICE, display_value, form_fields, setting_value


def field(name):
    return next(f for f in form_fields() if f.name == name)


def test_fields_come_from_the_registry():
    network_dim = field("network_dim")
    assert network_dim.param is get_param("network_dim")
    assert (network_dim.kind, network_dim.step) == ("slider", 1)
    assert field("optimizer_type").choices == list(OPTIMIZER_NAMES)
    assert field("clip_skip").kind == "number"  # optional slider: a number box that can be left empty
    assert field("gradient_checkpointing").kind == "checkbox"
    assert field("caption_dropout_rate").step == 0.01


def test_every_listed_name_is_declared_somewhere():
    pytest.importorskip("lib_train_tools.jobs.run_config")
    listed = [name for _section, names in SECTIONS for name in names]
    assert sorted(f.name for f in form_fields()) == sorted(listed)
    assert field("repeats").kind == "number" and field("base_model").kind == "checkpoint"
    assert field("network_type").choices == ["LoRA", "LoCon"]
    assert field("save_every_n_epochs").default == 1  # the tab's default, not the registry's None


def test_trainer_fields_without_the_jobs_package_are_all_registry_options():
    names = {f.name for f in form_fields()}
    registry = {n for _s, listed in SECTIONS for n in listed if n in PARAMS_BY_NAME}
    assert registry <= names


def test_values_convert_and_validate_with_the_trainer_rules():
    assert setting_value(field("network_dim"), 16.0) == 16
    assert setting_value(field("learning_rate"), "5e-4") == pytest.approx(5e-4)
    assert setting_value(field("clip_skip"), None) is None
    assert setting_value(field("optimizer_type"), "Lion") == "Lion"
    with pytest.raises(ValueError, match="below the minimum"):
        setting_value(field("learning_rate"), -1)
    with pytest.raises(ValueError, match="must be set"):
        setting_value(field("train_batch_size"), None)
    with pytest.raises(ValueError, match="not one of"):
        setting_value(field("lr_scheduler"), "sometimes")
    with pytest.raises(ValueError, match="not a valid int"):
        setting_value(field("network_dim"), 2.5)


def test_display_values_show_defaults_and_unset():
    assert display_value(field("network_dim"), {}) == get_param("network_dim").default
    assert display_value(field("network_dim"), {"network_dim": 32}) == 32
    assert display_value(field("clip_skip"), {}) is None
    assert display_value(field("resolution"), {}) == ""
    assert display_value(field("optimizer_type"), {"optimizer_type": "Lion"}) == "Lion"


def test_optional_choices_offer_unset():
    pytest.importorskip("lib_train_tools.jobs.run_config")
    assert field("network_type").choices[0] != UNSET_CHOICE  # LoRA is the default, never unset
    assert display_value(field("network_type"), {}) == "LoRA"
