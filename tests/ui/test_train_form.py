"""The settings form is generated from the registry: names, help, choices and ranges, converted both ways."""

from __future__ import annotations

import pytest

from lib_train_tools.train.params import OPTIMIZER_NAMES, get_param
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
    listed = [name for _section, names in SECTIONS for name in names]
    assert sorted(f.name for f in form_fields()) == sorted(listed)
    assert field("repeats").kind == "number" and field("base_model").kind == "checkpoint"
    assert field("network_type").choices == ["LoRA", "LoCon"]
    assert field("save_every_n_epochs").default == 1  # the tab's default, not the registry's None


# The form as it was listed by hand before the registry's form slots: the derived layout must not move a field.
FORM_BEFORE_THE_REGISTRY = (
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
    ("Several values: one run per combination (grid)", (
        "grid_train_batch_size", "grid_max_train_epochs", "grid_optimizer_type", "grid_learning_rate",
        "grid_unet_lr", "grid_text_encoder_lr", "grid_network_dim", "grid_network_alpha",
    )),
)


def test_sections_come_from_the_form_slots_unchanged():
    assert SECTIONS == FORM_BEFORE_THE_REGISTRY
    assert [f.section for f in form_fields()] == [title for title, names in SECTIONS for _ in names]
    labels = {f.name: f.label for f in form_fields()}
    assert labels["network_dim"] == "Network rank (network_dim)"
    assert labels["grid_learning_rate"] == "Learning rate: several values (grid_learning_rate)"
    assert all(label.endswith(f" ({name})") and label[0].isupper() for name, label in labels.items())
    kinds = {f.name: f.kind for f in form_fields()}
    assert (kinds["sample_prompt"], kinds["grid_optimizer_type"], kinds["grid_network_dim"]) == \
        ("textarea", "multiselect", "grid")


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
    assert field("network_type").choices[0] != UNSET_CHOICE  # LoRA is the default, never unset
    assert display_value(field("network_type"), {}) == "LoRA"


def test_only_changes_leaves_out_what_the_page_already_shows():
    from lib_train_tools.ui.replies import NO_CHANGE, Update
    from lib_train_tools.ui.train_form import only_changes

    values = (None, 5, 0.0001, "AdamW", True, Update.of(choices=["a", "b"], value="a"),
              Update.of(value=4, visible=False), Update.of(visible=True), "", 3)
    shown = (None, 5.0, 0.0001, "AdamW", True, "a", 4, 8, "", None)
    kept = only_changes(values, shown)
    assert kept[:5] == (NO_CHANGE,) * 5
    assert kept[5] == Update.of(choices=["a", "b"])  # new choices, the shown choice stays
    assert kept[6] == Update.of(visible=False)
    assert kept[7] == Update.of(visible=True)  # no value in it: kept whole
    assert kept[8] is NO_CHANGE
    assert kept[9] == 3  # the page shows something else: set it
    assert only_changes((1, True), (True, 1)) == (1, True)  # a checkbox is not a number
    with pytest.raises(ValueError):
        only_changes((1,), ())


def test_grid_fields_hold_several_checked_values():
    from lib_train_tools.jobs.grid import GridError

    lr, optimizers = field("grid_learning_rate"), field("grid_optimizer_type")
    assert (lr.kind, optimizers.kind, lr.section) == ("grid", "multiselect", optimizers.section)
    assert "AdamW" in optimizers.choices and "Lion" in optimizers.choices
    assert setting_value(lr, "1e-4, 5e-4 ,1e-4") == ["0.0001", "0.0005"]  # converted, duplicates dropped
    assert setting_value(lr, "") is None and setting_value(optimizers, []) is None
    assert setting_value(optimizers, ["Lion", "AdamW"]) == ["Lion", "AdamW"]
    with pytest.raises(GridError, match="fast"):
        setting_value(lr, "1e-4, fast")
    with pytest.raises(GridError):
        setting_value(field("grid_network_dim"), "8, -1")
    assert display_value(lr, {"grid_learning_rate": ["0.0001", "0.0005"]}) == "0.0001, 0.0005"
    assert display_value(optimizers, {}) == []
