"""Version settings -> trainer options of one run; what cannot run is a clear JobError."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lib_train_tools.jobs.job import JobError
from lib_train_tools.jobs.run_config import (
    RUN_PARAMS,
    TAB_DEFAULTS,
    build_run_config,
    check_run_config,
    resolve_base_model,
    unused_settings,
    write_run_files,
)
from lib_train_tools.jobs.run_options import trainer_options
from lib_train_tools.train.config import load_config
from lib_train_tools.train.params import CHECK_STAND_INS, MANAGED_OPTIONS, PARAMS_BY_NAME

from .conftest import add_processed_images


def build(version, base_model, run_dir=None, **settings):
    run_dir = run_dir or version.trains / "run"
    return build_run_config(version, {"base_model": str(base_model), **settings}, run_dir, "run")


def test_paths_and_names_come_from_the_version_and_run(version, base_model):
    run_dir = version.trains / "proj-v1"
    options = build_run_config(version, {"base_model": str(base_model), "network_dim": 16, "ui_tab": "x",
                                         "output_dir": "/elsewhere", "max_train_epochs": None}, run_dir, "proj-v1")
    assert options["train_data_dir"] == str(version.processed_parent)
    assert options["output_dir"] == str(run_dir) and options["output_name"] == "proj-v1"
    assert options["pretrained_model_name_or_path"] == str(base_model)
    assert options["network_dim"] == 16 and "ui_tab" not in options and "max_train_epochs" not in options
    for name, value in TAB_DEFAULTS.items():
        assert options[name] == value
    assert "reg_data_dir" not in options and "conv_dim" not in options


def test_settings_override_tab_defaults(version, base_model):
    assert build(version, base_model, save_every_n_epochs=3, caption_extension=".caption")["save_every_n_epochs"] == 3


def test_unused_settings_are_named():
    assert unused_settings({"network_dim": 4, "repeats": 2, "ui_tab": 1, "output_dir": "x"}) == ["output_dir",
                                                                                                 "ui_tab"]


def test_locon_trains_the_convolutions_with_network_dim_by_default(version, base_model):
    options = build(version, base_model, network_type="LoCon", network_dim=16, network_alpha=8)
    assert options["conv_dim"] == 16 and options["conv_alpha"] == 8
    options = build(version, base_model, network_type="LoCon", conv_dim=4)
    assert options["conv_dim"] == 4 and options["conv_alpha"] == PARAMS_BY_NAME["network_alpha"].default
    assert "conv_dim" not in build(version, base_model, network_type="LoRA", conv_dim=4)
    with pytest.raises(JobError, match="network_type"):
        build(version, base_model, network_type="LoHa")


def test_sample_prompt_becomes_a_prompt_file_sampled_every_epoch(version, base_model):
    run_dir = version.trains / "run"
    options = build(version, base_model, run_dir, sample_prompt="1girl, smile --s 4\n")
    assert options["sample_prompts"] == str(run_dir / "sample_prompts.txt")
    assert options["sample_every_n_epochs"] == 1
    cfg, _ = check_run_config(options)
    write_run_files(run_dir, cfg, "1girl, smile --s 4\n")
    assert (run_dir / "sample_prompts.txt").read_text(encoding="utf-8") == "1girl, smile --s 4\n"
    assert "sample_prompts" not in build(version, base_model, sample_prompt="  ")
    assert build(version, base_model, sample_prompt="x", sample_every_n_steps=50).get("sample_every_n_epochs") is None


def test_reg_images_are_used_when_present(version, base_model):
    folder = version.reg / "1_person"
    folder.mkdir(parents=True)
    assert "reg_data_dir" not in build(version, base_model)
    (folder / "a.png").write_bytes(b"png")
    assert build(version, base_model)["reg_data_dir"] == str(version.reg)


def test_config_toml_reads_back_the_same(version, base_model, tmp_path):
    options = build(version, base_model, learning_rate=5e-4, network_dim=8, optimizer_type="lion")
    cfg, _ = check_run_config(options)
    path = write_run_files(tmp_path / "run", cfg)
    again, _ = load_config(str(path))
    assert again == cfg and again.optimizer_type == "Lion" and again.caption_extension == ".txt"


def test_every_problem_is_listed_at_once(version, base_model):
    options = build(version, base_model, network_dim=0, lr_scheduler="sideways", train_batch_size="two")
    with pytest.raises(JobError) as error:
        check_run_config(options)
    text = str(error.value)
    assert "3 problem(s)" in text
    assert "network_dim" in text and "lr_scheduler" in text and "train_batch_size" in text


def test_no_processed_dataset(store, base_model):
    store.create_project("p")
    store.create_version("p", "empty")
    version = store.version("p", "empty")
    with pytest.raises(JobError, match="preprocess the dataset first"):
        build(version, base_model)
    (version.processed_parent / "3_p").mkdir()
    with pytest.raises(JobError, match="has no images"):
        build(version, base_model)


def test_base_model_errors(version, tmp_path):
    with pytest.raises(JobError, match="no base model chosen"):
        build_run_config(version, {}, tmp_path, "run")
    with pytest.raises(JobError, match="does not exist"):
        build_run_config(version, {"base_model": str(tmp_path / "gone.safetensors")}, tmp_path, "run")


def test_base_model_by_title_or_path(tmp_path):
    titles = {"sd15/base.safetensors [abc]": tmp_path / "base.safetensors"}
    assert resolve_base_model("sd15/base.safetensors [abc]", titles) == tmp_path / "base.safetensors"
    assert resolve_base_model(str(tmp_path / "x.ckpt"), titles) == tmp_path / "x.ckpt"
    with pytest.raises(JobError, match="no base model"):
        resolve_base_model("  ", titles)


def test_explicit_base_model_path_wins(version, base_model):
    options = build_run_config(version, {"base_model": "a title no one knows"}, version.trains / "r", "r",
                               base_model_path=base_model)
    assert options["pretrained_model_name_or_path"] == str(base_model)


def test_repeats_must_match_the_processed_folder(version, base_model):
    assert version.processed_repeats() == 2
    build(version, base_model, repeats=2)
    with pytest.raises(JobError, match="apply the repeats"):
        build(version, base_model, repeats=3)


def test_run_settings_are_declared_like_registry_entries():
    names = [p.name for p in RUN_PARAMS]
    assert {"base_model", "network_type", "repeats", "sample_prompt", "preview_all_epochs",
            "activation_tag"} <= set(names)
    assert not set(names) & set(PARAMS_BY_NAME)
    assert all(p.help for p in RUN_PARAMS)


def test_unicode_names_in_the_config(store, base_model, tmp_path):
    store.create_project("ねこ")
    store.create_version("ねこ", "初版")
    version = store.version("ねこ", "初版")
    add_processed_images(version, repeats=1, count=1)
    run_dir = version.trains / "ねこ-初版"
    cfg, _ = check_run_config(build_run_config(version, {"base_model": str(base_model)}, run_dir, "ねこ-初版"))
    again, _ = load_config(str(write_run_files(run_dir, cfg)))
    assert again.output_name == "ねこ-初版" and Path(again.train_data_dir) == version.processed_parent


def test_the_settings_check_and_the_run_share_one_rule(version, base_model):
    settings = {"base_model": str(base_model), "network_type": "LoCon", "network_dim": 16, "output_name": "mine",
                "progress_file": "p.jsonl", "sample_prompt": "a cat", "grid_learning_rate": ["0.001"],
                "keep_tokens": 1}
    checked = trainer_options(settings)  # what the settings check and the VRAM estimate see
    assert (checked["conv_dim"], checked["conv_alpha"]) == (16, PARAMS_BY_NAME["network_alpha"].default)
    assert {k: checked[k] for k in CHECK_STAND_INS} == CHECK_STAND_INS
    assert "output_name" not in checked and "progress_file" not in checked  # the job sets them
    assert checked["sample_prompts"] == os.path.join(CHECK_STAND_INS["output_dir"], "sample_prompts.txt")
    assert checked["sample_every_n_epochs"] == 1 and "grid_learning_rate" not in checked

    run_dir = version.trains / "run"
    built = build_run_config(version, settings, run_dir, "run")
    run = {"train_data_dir": str(version.processed_parent), "output_dir": str(run_dir), "output_name": "run",
           "pretrained_model_name_or_path": str(base_model)}
    assert built == trainer_options(settings, run)
    assert {k: v for k, v in built.items() if k not in MANAGED_OPTIONS and k != "sample_prompts"} == \
        {k: v for k, v in checked.items() if k not in MANAGED_OPTIONS and k != "sample_prompts"}
    assert built["sample_prompts"] == os.fspath(run_dir / "sample_prompts.txt")
    with pytest.raises(ValueError, match="manages"):
        trainer_options({}, {"learning_rate": 1.0})
    with pytest.raises(JobError, match="network_type"):
        trainer_options({"network_type": "LoHa"})
