"""Train settings handlers: saved per version, steps live, advanced TOML, checks, presets."""

from __future__ import annotations

import re

import pytest

from lib_train_tools.projects import load_settings, update_settings
from lib_train_tools.train.config import ConfigError
from lib_train_tools.ui import train_actions as actions
from lib_train_tools.ui.train_form import form_fields


def names():
    return [f.name for f in form_fields()]


def shown(reply, name):
    value = reply.values[names().index(name)]
    return value.get("value") if hasattr(value, "get") else value


def extra(reply, name):
    return reply.values[len(names()) + actions.VIEW_EXTRAS.index(name)]


def test_settings_are_saved_and_restored_per_version(services, selection):
    services.store.create_version("テスト", "v2")
    reply = actions.save_field(services, selection, "network_dim", 32.0)
    assert "network_dim = 32 saved" in reply.notice.text
    assert load_settings(services.store.version("テスト", "v1"))["network_dim"] == 32
    assert shown(actions.train_view(services, selection), "network_dim") == 32
    assert shown(actions.train_view(services, "テスト/v2"), "network_dim") != 32
    actions.save_field(services, selection, "optimizer_type", "Lion")
    assert shown(actions.train_view(services, selection), "optimizer_type") == "Lion"
    again = actions.save_field(services, selection, "network_dim", 32)  # left without a change
    assert again.notice is None and "Settings check" in again.values[0]
    untouched = actions.save_field(services, selection, "max_train_epochs", None)  # unset, shown unset
    assert untouched.notice is None


def test_invalid_values_are_refused_not_saved_and_block_training(services, selection):
    from lib_train_tools.ui import progress_actions

    version = services.store.version("テスト", "v1")
    actions.save_field(services, selection, "learning_rate", 0.01)
    reply = actions.save_field(services, selection, "learning_rate", -0.1)
    assert reply.notice.kind == "error" and "learning_rate was not saved" in reply.notice.text
    assert "below the minimum 0.0" in reply.notice.text
    assert reply.values[-1].get("info").startswith(actions.REFUSED_MARK + ": learning_rate is -0.1")  # marked
    assert "cannot train yet" in reply.values[0] and "learning_rate: the last entry was refused" in reply.values[0]
    assert load_settings(version)["learning_rate"] == 0.01  # kept, but not used: nothing is queued
    with pytest.raises(ValueError, match="nothing was queued: fix these fields first -- learning_rate"):
        progress_actions.begin_train(services, selection)
    assert services.queue.jobs() == []
    emptied = actions.save_field(services, selection, "learning_rate", None)  # "abc" in a number box
    assert "learning_rate must be set" in emptied.notice.text and emptied.notice.kind == "error"

    fixed = actions.save_field(services, selection, "learning_rate", 0.02)
    assert fixed.notice.kind == "ok" and actions.REFUSED_MARK not in fixed.values[-1].get("info")
    assert "refused" not in fixed.values[0]
    assert load_settings(version)["learning_rate"] == 0.02


def test_a_learning_rate_of_zero_is_a_problem_of_the_check(services, selection):
    reply = actions.save_field(services, selection, "learning_rate", 0.0)
    assert reply.notice.kind == "ok"  # in range, so saved; but it cannot train
    assert "cannot train yet" in reply.values[0] and "learning rate of every trained part is 0" in reply.values[0]
    reply = actions.save_field(services, selection, "unet_lr", 0.0001)
    assert "learning rate of every trained part" not in reply.values[0]


def test_the_check_lists_problems_of_the_settings_together(services, selection):
    actions.save_field(services, selection, "lr_warmup_steps", 10)
    reply = actions.save_field(services, selection, "lr_scheduler", "constant")
    assert "cannot train yet" in reply.values[0] and "has no warm-up" in reply.values[0]
    reply = actions.save_field(services, selection, "lr_scheduler", "constant_with_warmup")
    assert "no problems" in reply.values[0]


def test_the_check_sees_the_options_a_run_would_get():
    from lib_train_tools.ui.train_settings import settings_problems

    problems, _ = settings_problems({"network_type": "LoHa"})
    assert len(problems) == 1 and "network_type 'LoHa'" in problems[0]
    assert settings_problems({"network_type": "LoCon", "network_dim": 2048})[0] == [
        "network_dim is 2048, above the maximum 1024", "conv_dim is 2048, above the maximum 1024"]
    assert settings_problems({"output_name": 5})[0] == []  # the job sets the output name of each run


def test_steps_follow_the_typed_values(services, processed):
    reply = actions.steps(services, processed, 10, 5, 2)
    assert reply.values[0] == ("<p>6 images × 10 repeats = 60 samples ÷ batch 2 = 30 steps per epoch × 5 epochs "
                               "= 150 steps (guides aim at 250-1000 steps)</p>")
    assert "no epoch count" in actions.steps(services, processed, 10, None, 2).values[0]


def test_steps_before_preprocessing_say_so(services, selection):
    assert "preprocess the dataset" in actions.steps(services, selection, 4, 5, 1).values[0]


def test_repeats_rename_the_training_folder(services, processed):
    version = services.store.version("テスト", "v1")
    reply = actions.save_field(services, processed, "repeats", 12)
    assert version.processed_dir().name == "12_テスト" and "12_テスト" in reply.notice.text
    assert "× 12 repeats" in extra(actions.train_view(services, processed), "steps")


def test_base_model_architecture_is_detected(services, selection):
    from lib_train_tools.models.checkpoint_factory import write_checkpoint

    write_checkpoint(services.host.checkpoints_dir() / "family" / "tiny.safetensors", family="sd1")
    choices = actions.refresh_checkpoints(services, None).values[0]
    assert choices.get("choices") == ["family/tiny.safetensors"]
    reply = actions.save_field(services, selection, "base_model", "family/tiny.safetensors")
    assert "Detected: SD1.x" in reply.values[1]
    assert re.search(r"(Estimated VRAM:|training will run on the CPU, using) about [\d.]+ GiB", reply.values[0])
    bad = actions.save_field(services, selection, "base_model", "missing.safetensors")
    assert "Cannot read missing.safetensors" in bad.values[1]


def test_network_type_shows_the_locon_fields(services, selection):
    reply = actions.save_field(services, selection, "network_type", "LoCon")
    assert [u.get("visible") for u in reply.values[1:-1]] == [True, True]
    assert shown(actions.train_view(services, selection), "conv_dim") is None
    assert actions.train_view(services, selection).values[names().index("conv_dim")].get("visible") is True


def test_advanced_toml_saves_other_options_and_reports_every_problem(services, selection):
    version = services.store.version("テスト", "v1")
    reply = actions.apply_advanced(services, selection, "max_grad_norm = 0.5\n[more]\nmin_timestep = 100\n")
    assert "2 advanced option(s) saved" in reply.notice.text
    assert extra(reply, "advanced") == "max_grad_norm = 0.5\nmin_timestep = 100\n"
    assert load_settings(version)["min_timestep"] == 100
    with pytest.raises(ConfigError) as caught:
        actions.apply_advanced(services, selection, 'max_grad_norm = -1\ntrain_data_dir = "x"\nnonsense = 1\n')
    text = str(caught.value)
    assert "below the minimum" in text and "set by Train Tools" in text and "nonsense is not a training option" in text
    with pytest.raises(ConfigError, match="not valid TOML"):
        actions.apply_advanced(services, selection, "max_grad_norm = = 1")
    assert load_settings(version)["max_grad_norm"] == 0.5  # nothing was saved by the failed attempts
    actions.apply_advanced(services, selection, "min_timestep = 100\n")
    assert "max_grad_norm" not in load_settings(version)


def test_advanced_box_may_set_form_fields_too(services, selection):
    reply = actions.apply_advanced(services, selection, "network_dim = 64\n")
    assert shown(reply, "network_dim") == 64 and extra(reply, "advanced") == ""


def test_presets_save_load_and_delete(services, selection):
    version = services.store.version("テスト", "v1")
    update_settings(version, {"network_dim": 24, "keep_tokens": 1, "activation_tag": "mine"})
    reply = actions.save_preset(services, selection, "キャラ用")
    assert reply.values[0].get("choices") == ["キャラ用"]
    services.store.create_version("テスト", "v2")
    update_settings(services.store.version("テスト", "v2"), {"keep_tokens": 2, "network_dim": 4})
    reply = actions.load_preset(services, "テスト/v2", "キャラ用")
    assert shown(reply, "network_dim") == 24
    assert load_settings(services.store.version("テスト", "v2")) == {"network_dim": 24, "keep_tokens": 2}
    with pytest.raises(ValueError, match="no preset called"):
        actions.load_preset(services, selection, "missing")
    assert actions.delete_preset(services, "キャラ用").values[0].get("choices") == []


def test_copy_settings_from_another_version(services, selection):
    update_settings(services.store.version("テスト", "v1"), {"network_dim": 48, "activation_tag": "a"})
    services.store.create_project("other")
    services.store.create_version("other", "w")
    view = actions.train_view(services, "other/w")
    assert extra(view, "other_versions").get("choices") == ["テスト/v1"]
    reply = actions.copy_from_version(services, "other/w", "テスト/v1")
    assert shown(reply, "network_dim") == 48
    assert load_settings(services.store.version("other", "w")) == {"network_dim": 48}


def test_view_without_a_selection_shows_defaults(services):
    reply = actions.train_view(services, "")
    assert len(reply.values) == len(names()) + len(actions.VIEW_EXTRAS)
    assert reply.notice is None


def test_an_advanced_box_error_reaches_the_status_line(services, selection):
    from lib_train_tools.ui.wiring import run_handler

    out = run_handler(lambda text: actions.apply_advanced(services, selection, text), ("max_grad_norm = -1",),
                      len(names()) + len(actions.APPLIED_EXTRAS))
    assert "tt-error" in out[0] and "max_grad_norm is -1.0, below the minimum 0.0" in out[0]


def test_a_reload_sets_only_what_changed_since_the_page_showed_it(services, selection):
    """A reload answering after the user typed must not overwrite the typed field with its old value."""
    from lib_train_tools.ui.replies import NO_CHANGE

    first = actions.train_view(services, selection)
    page = [v.get("value") if hasattr(v, "get") else v for v in first.values[:len(names())]]
    page.append(extra(first, "advanced"))
    update_settings(services.store.version("テスト", "v1"), {"keep_tokens": 1})  # the tag editor, meanwhile
    reply = actions.train_view(services, selection, tuple(page))
    assert shown(reply, "keep_tokens") == 1
    untouched = [n for n in names() if n != "keep_tokens"]
    assert all(reply.values[names().index(n)] is NO_CHANGE or "value" not in reply.values[names().index(n)].changes
               for n in untouched)
    assert extra(reply, "advanced") is NO_CHANGE
    assert "Settings check" in extra(reply, "check")  # the read-only parts are always refreshed
    assert len(reply.values) == len(names()) + len(actions.VIEW_EXTRAS)


def test_grid_values_are_saved_and_shown_with_the_runs_they_make(services, selection):
    reply = actions.save_field(services, selection, "grid_max_train_epochs", "2, 4")
    assert "grid_max_train_epochs = ['2', '4'] saved" in reply.notice.text
    assert load_settings(services.store.version("テスト", "v1"))["grid_max_train_epochs"] == ["2", "4"]
    view = actions.train_view(services, selection)
    assert shown(view, "grid_max_train_epochs") == "2, 4"
    assert "2 runs will be queued (2 max_train_epochs)" in extra(view, "runs")
    refused = actions.save_field(services, selection, "grid_max_train_epochs", "2, x")
    assert refused.notice.kind == "error" and "grid values" in refused.notice.text
    assert load_settings(services.store.version("テスト", "v1"))["grid_max_train_epochs"] == ["2", "4"]


def test_the_check_lists_small_images_and_long_captions(services, selection, tmp_path):
    from PIL import Image

    from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess
    from lib_train_tools.datasets.upload import upload

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(incoming / "tiny.png")
    Image.new("RGB", (600, 600), (30, 200, 30)).save(incoming / "big.png")
    (incoming / "big.txt").write_text(", ".join(f"tag{i}" for i in range(40)), encoding="utf-8")
    version = services.store.version("テスト", "v1")
    upload(version, sorted(incoming.iterdir()))
    preprocess(version, PreprocessOptions(width=64, height=64))
    check = actions.save_field(services, selection, "resolution", "512").values[0]
    assert "Dataset" in check
    assert "tiny.png: 8x8: will be upscaled 64x for training at 512x512" in check
    assert "big: caption of" in check and "only the first 75 are trained" in check
    update_settings(version, {"max_token_length": 225})  # an advanced option: three token windows
    check = actions.save_field(services, selection, "resolution", "256").values[0]
    assert "caption of" not in check and "tiny.png: 8x8: will be upscaled 32x for training at 256x256" in check
