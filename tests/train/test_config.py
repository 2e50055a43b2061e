"""Tests for the parameter registry and the config loader (TOML, command line, validation, writing)."""

from __future__ import annotations

import dataclasses
import os
import stat
import sys

import pytest
import toml

from lib_train_tools.train import config as cfgmod
from lib_train_tools.train.config import (
    ConfigError,
    TrainConfig,
    load_config,
    network_args_dict,
    parse_cli,
    parse_kv_args,
    parse_resolution,
    save_config,
    to_dict,
    to_toml,
    validate,
)
from lib_train_tools.train.params import PARAMS, Param, get_param, params_in_group

REQUIRED = {
    "pretrained_model_name_or_path": "/models/sd15.safetensors",
    "train_data_dir": "/data/train",
    "output_dir": "/out",
}

SD_SCRIPTS_TOML = """
[model_arguments]
pretrained_model_name_or_path = "/models/v1-5-pruned.safetensors"
v2 = false

[dataset_arguments]
train_data_dir = "/data/train"
resolution = "512,768"
shuffle_caption = true
keep_tokens = 1
caption_extension = ".txt"
enable_bucket = true
max_bucket_reso = 1024
cache_latents = true

[additional_network_arguments]
network_module = "networks.lora"
network_dim = 32
network_alpha = 16
network_args = ["conv_dim=8", "conv_alpha=4", "unit=4"]
unet_lr = 1e-4
text_encoder_lr = 5e-5

[optimizer_arguments]
optimizer_type = "adamw8bit"
optimizer_args = ["weight_decay=0.1", "betas=0.9,0.99"]
learning_rate = 1e-4
lr_scheduler = "cosine_with_restarts"
lr_scheduler_num_cycles = 3
lr_warmup_steps = 0.05

[training_arguments]
output_dir = "/out"
output_name = "mychar"
save_every_n_epochs = 2
max_train_epochs = 10
train_batch_size = 2
mixed_precision = "fp16"
save_precision = "fp16"
clip_skip = 2
seed = 42
lowram = true
no_half_vae = true
"""


def write(tmp_path, text: str, name: str = "run.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_config_class_fields_are_the_registry() -> None:
    fields = dataclasses.fields(TrainConfig)
    assert [f.name for f in fields] == [p.name for p in PARAMS]
    assert [f.default for f in fields] == [p.default for p in PARAMS]
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.network_dim = 8  # type: ignore[misc]
    assert set(to_dict(cfg)) == {p.name for p in PARAMS}


def test_registry_has_the_sd_scripts_names_and_rejects_bad_declarations() -> None:
    for name in ("pretrained_model_name_or_path", "network_dim", "lr_scheduler_num_cycles", "keep_tokens",
                 "caption_extension", "save_precision", "min_snr_gamma", "progress_file", "device"):
        assert get_param(name).name == name
    assert get_param("lr_scheduler").choices == ("constant", "constant_with_warmup", "linear", "cosine",
                                                 "cosine_with_restarts", "polynomial")
    assert [p.name for p in params_in_group("sampling")][0] == "sample_prompts"
    with pytest.raises(KeyError, match="no_such_option"):
        get_param("no_such_option")
    with pytest.raises(ValueError, match="default 'a' is not a int"):
        Param("x", int, "a", help="", group="model")
    with pytest.raises(ValueError, match="a slider needs min and max"):
        Param("x", int, 1, help="", group="model", ui="slider")
    with pytest.raises(ValueError, match="group 'nope'"):
        Param("x", int, 1, help="", group="nope")


def test_sd_scripts_toml_loads_with_unknown_keys_named(tmp_path) -> None:
    cfg, warnings = load_config(write(tmp_path, SD_SCRIPTS_TOML))
    assert cfg.pretrained_model_name_or_path == "/models/v1-5-pruned.safetensors"
    assert cfg.v2 is False and cfg.v_parameterization is None
    assert parse_resolution(cfg.resolution) == (512, 768)
    assert (cfg.network_dim, cfg.network_alpha, cfg.conv_dim, cfg.conv_alpha) == (32, 16.0, 8, 4.0)
    assert cfg.network_args == ("unit=4",)
    assert cfg.optimizer_type == "AdamW8bit"
    assert cfg.optimizer_args == ("weight_decay=0.1", "betas=0.9,0.99")
    assert (cfg.lr_scheduler, cfg.lr_scheduler_num_cycles, cfg.lr_warmup_steps) == ("cosine_with_restarts", 3, 0.05)
    assert (cfg.unet_lr, cfg.text_encoder_lr, cfg.max_train_epochs, cfg.seed) == (1e-4, 5e-5, 10, 42)
    assert cfg.caption_extension == ".txt" and cfg.shuffle_caption is True
    unknown = [w for w in warnings if "unknown keys" in w]
    assert len(unknown) == 1 and "lowram" in unknown[0] and "no_half_vae" in unknown[0]
    assert any("unit=4" in w for w in warnings)


def test_command_line_overrides_toml(tmp_path) -> None:
    path = write(tmp_path, SD_SCRIPTS_TOML)
    argv = ["--config_file", path, "--network_dim", "16", "--no-shuffle_caption", "--network_args",
            "conv_dim=2", "--lr_scheduler", "linear", "--v_parameterization", "--clip_skip", "none",
            "--lowram_typo", "3"]
    cfg, warnings = parse_cli(argv)
    assert cfg.network_dim == 16
    assert cfg.shuffle_caption is False
    assert cfg.conv_dim == 2 and cfg.conv_alpha == 4.0
    assert cfg.network_args == ()
    assert cfg.lr_scheduler == "linear" and cfg.v_parameterization is True
    assert cfg.clip_skip is None
    assert cfg.network_alpha == 16.0
    assert any("--lowram_typo 3" in w for w in warnings)
    cfg2, _ = parse_cli(["--config", path[:-5]])  # sd-scripts allows leaving off ".toml"
    assert cfg2.network_dim == 32


def test_command_line_alone_and_its_errors() -> None:
    argv = [f"--{k}={v}" for k, v in REQUIRED.items()] + ["--shuffle_caption", "--resolution", "768"]
    cfg, warnings = parse_cli(argv)
    assert cfg.shuffle_caption is True and cfg.resolution == "768"
    assert warnings == []
    with pytest.raises(ConfigError, match="network_dim"):
        parse_cli(argv + ["--network_dim"])
    with pytest.raises(ConfigError, match="network_dim: 'big' is not a valid int"):
        parse_cli(argv + ["--network_dim", "big"])


def test_invalid_config_lists_every_problem(tmp_path) -> None:
    bad = """
[model]
pretrained_model_name_or_path = "/m.safetensors"
mixed_precision = "fp32"
[data]
train_data_dir = "/d"
resolution = "512x512"
[net]
network_dim = 0
network_train_unet_only = true
network_train_text_encoder_only = true
unet_lr = "fast"
[opt]
optimizer_args = ["weight_decay"]
lr_warmup_steps = 10
optimizer_type = "SuperAdam"
"""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bad))
    message = str(info.value)
    expected = [
        "unet_lr: 'fast' is not a valid float",
        "mixed_precision is 'fp32', which is not one of: no, fp16, bf16",
        "optimizer_type is 'SuperAdam'",
        "network_dim is 0, below the minimum 1",
        "output_dir is required",
        "resolution '512x512' is not",
        "network_train_unet_only and network_train_text_encoder_only are both set",
        "lr_scheduler \"constant\" has no warm-up",
        "optimizer_args entries must look like key=value; these do not: 'weight_decay'",
    ]
    for part in expected:
        assert part in message, part
    assert len(info.value.problems) == len(expected)
    assert "run.toml" in message


def test_validate_reports_wrong_types_without_crashing() -> None:
    cfg = TrainConfig(**REQUIRED, min_bucket_reso="big", network_dim=2.5, shuffle_caption="yes")
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert len(info.value.problems) == 3
    assert "min_bucket_reso must be a int, got 'big'" in str(info.value)
    assert "network_dim must be a int, got 2.5" in str(info.value)
    validate(TrainConfig(**REQUIRED))


def test_cross_field_rules() -> None:
    def problems(**values):
        with pytest.raises(ConfigError) as info:
            load_config(None, {**REQUIRED, **values})
        return info.value.problems

    assert problems(full_fp16=True) == ['full_fp16 needs mixed_precision = "fp16"']
    assert problems(cache_latents=True, random_crop=True)[0].startswith("cache_latents cannot")
    assert len(problems(cache_text_encoder_outputs=True, shuffle_caption=True)) == 2
    assert problems(min_timestep=900, max_timestep=100) == ["min_timestep 900 is larger than max_timestep 100"]
    assert "must lie within" in problems(resolution="2048", enable_bucket=True)[0]
    assert "whole number" in problems(lr_warmup_steps=2.5, lr_scheduler="linear")[0]
    load_config(None, {**REQUIRED, "resolution": "2048", "enable_bucket": True, "max_bucket_reso": 2048})


def test_missing_required_options_are_all_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {})
    text = str(info.value)
    for name in ("pretrained_model_name_or_path", "train_data_dir", "output_dir"):
        assert name in text
    cfg, _ = load_config(None, {**{k: v for k, v in REQUIRED.items() if k != "train_data_dir"},
                                "dataset_config": "/d.toml"})
    assert cfg.dataset_config == "/d.toml"


def test_value_spellings_sd_scripts_accepts() -> None:
    cfg, warnings = load_config(None, {**REQUIRED, "resolution": [640, 512], "lr_warmup_steps": "10%",
                                       "text_encoder_lr": [5e-5, 1e-5], "optimizer_type": "PRODIGY",
                                       "network_args": ["dropout=0.1"], "max_train_steps": 100.0,
                                       "lr_scheduler": "linear"})
    assert cfg.resolution == "640,512" and parse_resolution(cfg.resolution) == (640, 512)
    assert cfg.lr_warmup_steps == pytest.approx(0.1)
    assert cfg.text_encoder_lr == 5e-5 and any("text_encoder_lr lists 2 rates" in w for w in warnings)
    assert cfg.optimizer_type == "Prodigy"
    assert cfg.network_dropout == 0.1 and cfg.network_args == ()
    assert cfg.max_train_steps == 100 and isinstance(cfg.max_train_steps, int)
    cfg, _ = load_config(None, {**REQUIRED, "resolution": 768, "lr_warmup_steps": 10.0,
                              "lr_scheduler": "linear"})
    assert cfg.resolution == "768" and cfg.lr_warmup_steps == 10 and isinstance(cfg.lr_warmup_steps, int)


def test_conflicting_network_args_are_a_problem() -> None:
    with pytest.raises(ConfigError, match="conv_dim is set to 4 and network_args says 'conv_dim=8'"):
        load_config(None, {**REQUIRED, "conv_dim": 4, "network_args": ["conv_dim=8"]})
    cfg, _ = load_config(None, {**REQUIRED, "conv_alpha": 4, "network_args": ["conv_alpha=4.0"]})
    assert cfg.conv_alpha == 4.0


def test_compatibility_notes_and_section_conflicts(tmp_path) -> None:
    text = 'xformers = true\n[a]\nnetwork_dim = 8\n[b]\nnetwork_dim = 16\n'
    overrides = {**REQUIRED, "reg_data_dir": "/reg", "dataset_config": "/d.toml"}
    cfg, warnings = load_config(write(tmp_path, text), overrides)
    assert cfg.network_dim == 16 and cfg.xformers is True
    assert any("network_dim is set in [a] and in [b]" in w for w in warnings)
    assert any("xformers is accepted for compatibility and ignored" in w for w in warnings)
    assert any("train_data_dir and reg_data_dir are ignored" in w for w in warnings)


def test_unreadable_toml_names_the_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="broken.toml is not valid TOML"):
        load_config(write(tmp_path, "network_dim = = 3", "broken.toml"))
    missing = str(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="absent.toml does not exist"):
        load_config(missing)


def test_toml_round_trip_and_sd_scripts_layout(tmp_path) -> None:
    cfg, _ = load_config(write(tmp_path, SD_SCRIPTS_TOML), {
        "training_comment": 'Ünïcode "quoted"\nline two\ttab \x7f', "lr_warmup_steps": 100,
        "network_dropout": 0.25, "rank_dropout": 0.1, "noise_offset": 0.0357})
    text = to_toml(cfg)
    assert 'network_args = ["unit=4", "conv_dim=8", "conv_alpha=4.0", "rank_dropout=0.1"]' in text
    assert "\nconv_dim" not in text and "lr_warmup_steps = 100\n" in text
    again, warnings = load_config(write(tmp_path, text, "again.toml"))
    assert again == cfg
    assert toml.loads(text)["saving"]["training_comment"] == cfg.training_comment
    changed = to_toml(cfg, only_changed=True)
    assert "network_dim = 32" in changed and "sample_sampler" not in changed


def test_save_config_is_atomic_and_readable(tmp_path) -> None:
    cfg, _ = load_config(None, {**REQUIRED, "output_name": "ナルト"})
    path = tmp_path / "saved.toml"
    save_config(cfg, str(path))
    assert os.listdir(tmp_path) == ["saved.toml"]
    assert load_config(str(path))[0] == cfg
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # readable by others, like any saved file


def test_parse_kv_args_and_network_args_dict() -> None:
    parsed = parse_kv_args(["betas=0.9,0.99", "decouple=True", "d_coef=2", "eps=1e-8", "name=foo",
                            "flag=false", "x=None"])
    assert parsed == {"betas": (0.9, 0.99), "decouple": True, "d_coef": 2, "eps": 1e-8, "name": "foo",
                      "flag": False, "x": None}
    with pytest.raises(ValueError, match="'weight_decay' is not key=value"):
        parse_kv_args(["weight_decay"], "optimizer_args")
    cfg = TrainConfig(**REQUIRED, conv_dim=8, module_dropout=0.1, network_args=("algo=locon",))
    assert network_args_dict(cfg) == {"algo": "locon", "conv_dim": "8", "module_dropout": "0.1"}


def test_argument_parser_has_a_flag_per_option() -> None:
    parser = cfgmod.build_arg_parser()
    flags = {s for action in parser._actions for s in action.option_strings}
    for param in PARAMS:
        assert f"--{param.name}" in flags
        if param.type is bool:
            assert f"--no-{param.name}" in flags
    assert {"--config", "--config_file"} <= flags


def test_toml_reading_without_tomllib_uses_the_toml_package(monkeypatch) -> None:
    from lib_train_tools.train.config_toml import load_toml_text

    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10
    assert load_toml_text('[a]\nnetwork_dim = 8\n', "x.toml") == {"a": {"network_dim": 8}}
    with pytest.raises(ConfigError, match="x.toml is not valid TOML"):
        load_toml_text("network_dim = = 8", "x.toml")


def test_bad_special_spellings_name_the_option() -> None:
    with pytest.raises(ConfigError, match="lr_warmup_steps: 'ten%' is not a valid float"):
        load_config(None, {**REQUIRED, "lr_warmup_steps": "ten%", "lr_scheduler": "linear"})


SD_SCRIPTS_FP8_TOML = """
[model_arguments]
pretrained_model_name_or_path = "/models/sd_xl_base_1.0.safetensors"

[dataset_arguments]
train_data_dir = "/data/train"
resolution = "1024,1024"

[optimizer_arguments]
optimizer_type = "Adafactor"
optimizer_args = ["scale_parameter=False", "relative_step=False", "warmup_init=False"]
learning_rate = 1e-4

[training_arguments]
output_dir = "/out"
mixed_precision = "bf16"
full_bf16 = true
fp8_base = true
gradient_checkpointing = true
"""


def test_sd_scripts_toml_with_fp8_base_and_full_bf16_loads(tmp_path) -> None:
    cfg, warnings = load_config(write(tmp_path, SD_SCRIPTS_FP8_TOML))
    assert (cfg.mixed_precision, cfg.full_bf16, cfg.fp8_base, cfg.fp8_base_unet) == ("bf16", True, True, False)
    assert not [w for w in warnings if "unknown keys" in w]
    assert to_dict(load_config(write(tmp_path, to_toml(cfg), "again.toml"))[0]) == to_dict(cfg)
