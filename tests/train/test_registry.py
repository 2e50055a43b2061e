"""The parameter registry is the one place an option's roles are declared; every table is derived from it.

The golden tables below are the hand-written tables the registry replaced: a derived view must not
change what the form, the grid, the metadata or the jobs did with them.
"""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path

import pytest

from lib_train_tools.jobs.run_options import RUN_PARAMS
from lib_train_tools.train import params
from lib_train_tools.train.config import TrainConfig, coerce_value, to_toml
from lib_train_tools.train.lora_metadata import KOHYA_ONLY_KEYS
from lib_train_tools.train.params import PARAMS, PARAMS_BY_NAME, Form, Grid, Param, form_layout, get_param

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "tools" / "gen_train_config.py"

# The join order: TrainConfig's fields, the command line's flags and the TOML file's keys follow it.
ORDER = """
pretrained_model_name_or_path v2 v_parameterization zero_terminal_snr clip_skip max_token_length mixed_precision
full_fp16 full_bf16 fp8_base fp8_base_unet gradient_checkpointing xformers sdpa device train_data_dir reg_data_dir
dataset_config resolution
caption_extension shuffle_caption keep_tokens keep_tokens_separator caption_prefix caption_suffix
caption_dropout_rate caption_tag_dropout_rate caption_dropout_every_n_epochs flip_aug random_crop alpha_mask
enable_bucket min_bucket_reso max_bucket_reso bucket_reso_steps bucket_no_upscale cache_latents
cache_latents_to_disk cache_text_encoder_outputs prior_loss_weight max_data_loader_n_workers
persistent_data_loader_workers network_module algo dora_wd factor full_matrix decompose_both
network_dim network_alpha network_dropout conv_dim conv_alpha
rank_dropout module_dropout network_args network_weights network_train_unet_only
network_train_text_encoder_only loraplus_lr_ratio loraplus_unet_lr_ratio loraplus_text_encoder_lr_ratio
block_dims block_alphas conv_block_dims conv_block_alphas down_lr_weight mid_lr_weight up_lr_weight
block_lr_zero_threshold optimizer_type optimizer_args learning_rate unet_lr text_encoder_lr
lr_scheduler lr_warmup_steps lr_scheduler_num_cycles lr_scheduler_power max_grad_norm train_batch_size
max_train_epochs max_train_steps gradient_accumulation_steps seed validation_split validation_seed
validate_every_n_epochs validate_every_n_steps max_validation_steps output_dir output_name save_model_as
save_precision save_every_n_epochs save_every_n_steps save_state resume training_comment sample_prompts
sample_every_n_epochs sample_every_n_steps sample_sampler noise_offset noise_offset_random_strength
ip_noise_gamma ip_noise_gamma_random_strength multires_noise_iterations multires_noise_discount
min_snr_gamma debiased_estimation_loss loss_type huber_schedule huber_c huber_scale masked_loss min_timestep
max_timestep
log_with logging_dir progress_file
""".split()

KOHYA_KEYS_BEFORE = {
    "ss_learning_rate": "learning_rate", "ss_unet_lr": "unet_lr", "ss_text_encoder_lr": "text_encoder_lr",
    "ss_gradient_checkpointing": "gradient_checkpointing",
    "ss_gradient_accumulation_steps": "gradient_accumulation_steps", "ss_lr_warmup_steps": "lr_warmup_steps",
    "ss_lr_scheduler": "lr_scheduler", "ss_network_dropout": "network_dropout",
    "ss_mixed_precision": "mixed_precision", "ss_full_fp16": "full_fp16", "ss_clip_skip": "clip_skip",
    "ss_max_token_length": "max_token_length", "ss_cache_latents": "cache_latents", "ss_noise_offset": "noise_offset",
    "ss_multires_noise_iterations": "multires_noise_iterations",
    "ss_multires_noise_discount": "multires_noise_discount", "ss_training_comment": "training_comment",
    "ss_max_grad_norm": "max_grad_norm", "ss_caption_dropout_rate": "caption_dropout_rate",
    "ss_caption_dropout_every_n_epochs": "caption_dropout_every_n_epochs",
    "ss_caption_tag_dropout_rate": "caption_tag_dropout_rate", "ss_prior_loss_weight": "prior_loss_weight",
    "ss_min_snr_gamma": "min_snr_gamma",
    # sd-scripts' objective options
    "ss_noise_offset_random_strength": "noise_offset_random_strength", "ss_ip_noise_gamma": "ip_noise_gamma",
    "ss_ip_noise_gamma_random_strength": "ip_noise_gamma_random_strength",
    "ss_debiased_estimation": "debiased_estimation_loss", "ss_loss_type": "loss_type",
    "ss_huber_schedule": "huber_schedule", "ss_huber_c": "huber_c", "ss_huber_scale": "huber_scale",
    "ss_masked_loss": "masked_loss",  # ours: sd-scripts writes no key for it
    # sd-scripts' dataset keys
    "ss_batch_size_per_device": "train_batch_size", "ss_flip_aug": "flip_aug", "ss_random_crop": "random_crop",
    "ss_shuffle_caption": "shuffle_caption", "ss_enable_bucket": "enable_bucket",
    "ss_bucket_no_upscale": "bucket_no_upscale", "ss_min_bucket_reso": "min_bucket_reso",
    "ss_max_bucket_reso": "max_bucket_reso", "ss_keep_tokens": "keep_tokens",
    # sd-scripts' validation keys (2025)
    "ss_validation_split": "validation_split", "ss_validation_seed": "validation_seed",
    "ss_validate_every_n_epochs": "validate_every_n_epochs", "ss_validate_every_n_steps": "validate_every_n_steps",
    "ss_max_validation_steps": "max_validation_steps",
    # sd-scripts' fp8 base-model keys (issue 15)
    "ss_fp8_base": "fp8_base", "ss_fp8_base_unet": "fp8_base_unet",
}


def test_the_join_order_is_unchanged() -> None:
    assert [p.name for p in PARAMS] == ORDER
    assert [p.name for p in params.params_in_group("sampling")][0] == "sample_prompts"
    assert [p.name for p in params.params_in_group("advanced")][:2] == ["noise_offset", "noise_offset_random_strength"]


def test_derived_tables_equal_the_tables_they_replaced() -> None:
    assert set(params.PATH_OPTIONS) == {
        "pretrained_model_name_or_path", "train_data_dir", "reg_data_dir", "dataset_config", "output_dir",
        "network_weights", "resume", "sample_prompts", "logging_dir", "progress_file"}
    assert params.KOHYA_KEYS == KOHYA_KEYS_BEFORE
    assert list(params.GRID_KEYS.items()) == [
        ("train_batch_size", "bs"), ("max_train_epochs", "ep"), ("optimizer_type", "op"), ("learning_rate", "lr"),
        ("unet_lr", "ulr"), ("text_encoder_lr", "tlr"), ("network_dim", "net"), ("network_alpha", "ap")]
    assert params.RESULTS_SETTINGS == (
        "network_dim", "network_alpha", "learning_rate", "unet_lr", "text_encoder_lr", "optimizer_type",
        "lr_scheduler", "max_train_epochs", "max_train_steps", "train_batch_size", "resolution", "seed")
    assert params.TAB_DEFAULTS == {"caption_extension": ".txt", "save_every_n_epochs": 1, "save_state": True,
                                   "save_precision": "fp16"}
    assert set(params.MANAGED_OPTIONS) == {"train_data_dir", "output_dir", "output_name",
                                           "pretrained_model_name_or_path", "progress_file", "resume"}
    assert params.CHECK_STAND_INS == {"pretrained_model_name_or_path": "base-model.safetensors",
                                      "train_data_dir": "dataset", "output_dir": "run"}


def test_path_options_are_text_and_metadata_keys_are_unique() -> None:
    assert all(get_param(name).type is str for name in params.PATH_OPTIONS)
    assert len(params.KOHYA_KEYS) == sum(1 for p in PARAMS if p.kohya_key)


def test_kohya_only_keys_name_options_the_registry_does_not_have() -> None:
    assert not {option for option, _off in KOHYA_ONLY_KEYS.values()} & set(PARAMS_BY_NAME)
    assert not set(KOHYA_ONLY_KEYS) & set(params.KOHYA_KEYS)
    assert KOHYA_ONLY_KEYS["ss_color_aug"] == ("color_aug", False)


def test_an_option_is_on_the_form_exactly_when_it_has_a_ui_kind() -> None:
    for p in PARAMS + RUN_PARAMS:
        assert (p.ui is None) == (p.form is None), p.name
    on_form = {name for _title, names in form_layout(RUN_PARAMS) for name in names}
    assert on_form == {p.name for p in PARAMS + RUN_PARAMS if p.form is not None}
    assert {"noise_offset", "min_snr_gamma", "lr_scheduler_num_cycles"} <= on_form
    assert not {"output_dir", "sample_prompts", "optimizer_args", "max_train_steps"} & on_form


def test_roles_are_checked_when_declared() -> None:
    def problem(**roles) -> str:
        with pytest.raises(ValueError) as info:
            Param("x", int, 1, help="", group="model", **roles)
        return str(info.value)

    assert "ui and form go together" in problem(ui="number")
    assert "ui and form go together" in problem(form=Form("network", 99))
    assert "form section 'nowhere'" in problem(ui="number", form=Form("nowhere", 1))
    assert "equals the default" in problem(tab_default=1)
    assert "tab default 'a' is not a int" in problem(tab_default="a")
    assert "stand-in" in problem(stand_in="x")
    assert "a path option holds text" in problem(path=True)
    assert "does not start with ss_" in problem(kohya_key="x")
    assert "grid option" in problem(grid=Grid("a-b", 1))
    assert "neither on the form" in problem(managed=True, tab_default=2)


def test_two_fields_in_one_place_are_refused() -> None:
    clash = Param("x", int, 1, help="", group="model", ui="number", form=Form("network", 30))
    with pytest.raises(ValueError, match="share a rank.*network_dim"):
        form_layout([clash])


def test_spelling_hooks_belong_to_their_options() -> None:
    warnings: list[str] = []
    assert coerce_value(get_param("resolution"), [512, 768], warnings) == "512,768"
    assert coerce_value(get_param("resolution"), 640, warnings) == "640"
    assert coerce_value(get_param("lr_warmup_steps"), "5%", warnings) == 0.05
    steps = coerce_value(get_param("lr_warmup_steps"), 10.0, warnings)
    assert steps == 10 and isinstance(steps, int)
    assert coerce_value(get_param("text_encoder_lr"), [1e-4, 2e-4], warnings) == 1e-4
    assert warnings == ["text_encoder_lr lists 2 rates; one rate (0.0001) is used for every text encoder"]
    assert coerce_value(get_param("learning_rate"), "10", []) == 10.0  # no hook: plain conversion


def test_the_typed_config_is_generated_from_the_registry() -> None:
    generator = runpy.run_path(str(GENERATOR))
    assert Path(generator["TARGET"]).read_text(encoding="utf-8") == generator["render"](), \
        "train_config.py is out of date: run python3 tools/gen_train_config.py"
    fields = dataclasses.fields(TrainConfig)
    assert [(f.name, f.default) for f in fields] == [(p.name, p.default) for p in PARAMS]
    assert TrainConfig.__annotations__["network_args"] == "tuple[str, ...]"
    assert TrainConfig.__annotations__["clip_skip"] == "int | None"
    assert TrainConfig.__module__ == "lib_train_tools.train.train_config"


def test_toml_tables_follow_the_groups() -> None:
    text = to_toml(TrainConfig(pretrained_model_name_or_path="m", noise_offset=0.1, progress_file="p"))
    tables = [line for line in text.splitlines() if line.startswith("[")]
    assert tables == [f"[{group}]" for group in params.GROUPS]
    assert text.index("[advanced]") < text.index("noise_offset") < text.index("progress_file")
