"""Tests for lib_train_tools/train/lora_metadata.py: kohya `ss_*` and `modelspec.*` LoRA metadata."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lib_train_tools import __version__
from lib_train_tools.train.config import TrainConfig
from lib_train_tools.train.data.dataset_summary import DatasetSummary
from lib_train_tools.train.lora_metadata import (
    PATH_OPTIONS,
    MetadataError,
    build_metadata,
    minimal_metadata,
    new_session_id,
)
from lib_train_tools.train.model_hashes import add_sshs_hashes, safetensors_file_data_sha256
from lib_train_tools.train.params import get_param

# kohya-lora-format-and-training.md §3.1, less ss_sd_scripts_commit_hash (we are not sd-scripts),
# the --vae keys (no such option) and ss_network_args (only with network args).
ALWAYS_PRESENT = """
ss_session_id ss_training_started_at ss_training_finished_at ss_output_name ss_learning_rate
ss_unet_lr ss_text_encoder_lr ss_num_train_images ss_num_validation_images ss_num_reg_images
ss_num_batches_per_epoch ss_num_epochs ss_epoch ss_steps ss_gradient_checkpointing
ss_gradient_accumulation_steps ss_max_train_steps ss_lr_warmup_steps ss_lr_scheduler
ss_network_module ss_network_dim ss_network_alpha ss_network_dropout ss_mixed_precision
ss_full_fp16 ss_v2 ss_base_model_version ss_clip_skip ss_max_token_length ss_cache_latents
ss_seed ss_lowram ss_noise_offset ss_multires_noise_iterations ss_multires_noise_discount
ss_adaptive_noise_scale ss_zero_terminal_snr ss_noise_offset_random_strength ss_training_comment
ss_optimizer ss_max_grad_norm ss_caption_dropout_rate ss_caption_dropout_every_n_epochs
ss_caption_tag_dropout_rate ss_face_crop_aug_range ss_prior_loss_weight ss_min_snr_gamma
ss_scale_weight_norms ss_ip_noise_gamma ss_ip_noise_gamma_random_strength ss_debiased_estimation
ss_loss_type ss_huber_schedule ss_huber_scale ss_huber_c ss_fp8_base ss_fp8_base_unet
ss_validation_seed ss_validation_split ss_max_validation_steps ss_validate_every_n_epochs
ss_validate_every_n_steps ss_resize_interpolation ss_sd_model_name
""".split()
# §3.2, folder mode.
DATASET_KEYS = """
ss_batch_size_per_device ss_total_batch_size ss_resolution ss_color_aug ss_flip_aug
ss_random_crop ss_shuffle_caption ss_enable_bucket ss_bucket_no_upscale ss_min_bucket_reso
ss_max_bucket_reso ss_keep_tokens ss_dataset_dirs ss_reg_dataset_dirs ss_tag_frequency
ss_bucket_info
""".split()
JSON_KEYS = ("ss_dataset_dirs", "ss_reg_dataset_dirs", "ss_tag_frequency", "ss_bucket_info",
             "ss_network_args", "tt_config")
MODELSPEC_KEYS = """
modelspec.sai_model_spec modelspec.architecture modelspec.implementation modelspec.title
modelspec.resolution modelspec.date modelspec.prediction_type modelspec.implementation_version
""".split()
STARTED_AT = 1700000000.25
SAVED_AT = 1700003600.75


def summary() -> dict:
    return {
        "num_train_images": 40,
        "num_reg_images": 2,
        "dataset_dirs": {"10_sks dog": {"n_repeats": 10, "img_count": 4}},
        "reg_dataset_dirs": {"1_dog": {"n_repeats": 1, "img_count": 2}},
        "tag_frequency": {"10_sks dog": {"sks": 4, "dog": 4, "1girl": 1}, "1_dog": {"dog": 2}},
        "bucket_info": {"buckets": {"0": {"resolution": [512, 512], "count": 40}},
                        "mean_img_ar_error": 0.0},
    }


def make_cfg(tmp_path, **options) -> TrainConfig:
    model = tmp_path / "v1-5-pruned-emaonly.safetensors"
    model.write_bytes(b"not really a model")
    return TrainConfig(pretrained_model_name_or_path=str(model), train_data_dir=str(tmp_path),
                       output_dir=str(tmp_path), **options)


def build(cfg, family="sd1", v_prediction=False, resolution=(512, 512), **overrides) -> dict[str, str]:
    arguments = dict(
        family=family, v_prediction=v_prediction, dataset_summary=summary(),
        optimizer_desc="torch.optim.adamw.AdamW(weight_decay=0.1)", session_id=2914523481,
        training_started_at=STARTED_AT, epoch=3, steps=1200, num_epochs=10,
        num_batches_per_epoch=400, base_model_path=cfg.pretrained_model_name_or_path,
        base_model_hashes=None, resolution=resolution, saved_at=SAVED_AT,
    )
    arguments.update(overrides)
    return build_metadata(cfg, **arguments)


def a1111_family(metadata: dict[str, str]) -> str:
    """A1111's NetworkOnDisk.detect_version, restated from the reference (§0 item 6)."""
    if str(metadata.get("ss_base_model_version", "")).startswith("sdxl_"):
        return "SDXL"
    if str(metadata.get("ss_v2", "")) == "True":
        return "SD2"
    return "SD1" if metadata else "Unknown"


@pytest.fixture
def sd1_lora(tmp_path):
    cfg = make_cfg(tmp_path, output_name="mychar", network_dim=32, network_alpha=16.0,
                   resolution="512", clip_skip=2)
    return build(cfg)


@pytest.fixture
def sdxl_locon(tmp_path):
    cfg = make_cfg(tmp_path, output_name="xl", network_dim=16, network_alpha=8.0, conv_dim=8,
                   conv_alpha=4.0, rank_dropout=0.1, network_args=("algo=lora",),
                   gradient_accumulation_steps=2, train_batch_size=3)
    return build(cfg, family="sdxl", resolution=(1024, 768))


@pytest.mark.parametrize("which", ["sd1_lora", "sdxl_locon"])
def test_every_kohya_key_is_present_and_every_value_is_str(which, request):
    metadata = request.getfixturevalue(which)
    missing = [key for key in ALWAYS_PRESENT + DATASET_KEYS + MODELSPEC_KEYS if key not in metadata]
    assert missing == []
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    invented = [k for k in metadata if k.startswith("tt_") and k != "tt_config"]
    assert invented == []


def test_sd1_lora_values(sd1_lora):
    assert sd1_lora["ss_base_model_version"] == "sd_v1"
    assert sd1_lora["ss_v2"] == "False"
    assert sd1_lora["ss_network_dim"] == "32"
    assert sd1_lora["ss_network_alpha"] == "16.0"
    assert sd1_lora["ss_network_module"] == "networks.lora"
    assert sd1_lora["ss_network_dropout"] == "None"
    assert sd1_lora["ss_resolution"] == "(512, 512)"
    assert sd1_lora["ss_output_name"] == sd1_lora["modelspec.title"] == "mychar"
    assert sd1_lora["ss_sd_model_name"] == "v1-5-pruned-emaonly.safetensors"
    assert sd1_lora["ss_learning_rate"] == "0.0001"
    assert sd1_lora["ss_clip_skip"] == "2"
    assert sd1_lora["ss_training_started_at"] == "1700000000.25"
    assert sd1_lora["ss_training_finished_at"] == "1700003600.75"
    assert (sd1_lora["ss_epoch"], sd1_lora["ss_steps"], sd1_lora["ss_num_epochs"]) == ("3", "1200", "10")
    assert sd1_lora["ss_num_train_images"] == "40"
    assert sd1_lora["ss_optimizer"] == "torch.optim.adamw.AdamW(weight_decay=0.1)"
    assert sd1_lora["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert sd1_lora["modelspec.implementation"] == "diffusers"
    assert sd1_lora["modelspec.resolution"] == "512x512"
    assert sd1_lora["modelspec.prediction_type"] == "epsilon"
    assert sd1_lora["modelspec.encoder_layer"] == "2"
    assert sd1_lora["modelspec.implementation_version"] == f"train-tools/{__version__}"
    assert "ss_network_args" not in sd1_lora
    assert "modelspec.timestep_range" not in sd1_lora
    assert "ss_sd_model_hash" not in sd1_lora and "ss_new_sd_model_hash" not in sd1_lora


def test_sdxl_locon_values(sdxl_locon):
    assert sdxl_locon["ss_base_model_version"] == "sdxl_base_v1-0"
    assert sdxl_locon["ss_v2"] == "False"
    assert sdxl_locon["ss_network_alpha"] == "8.0"
    assert json.loads(sdxl_locon["ss_network_args"]) == {
        "algo": "lora", "conv_dim": "8", "conv_alpha": "4.0", "rank_dropout": "0.1"}
    assert sdxl_locon["ss_resolution"] == "(1024, 768)"
    assert sdxl_locon["modelspec.resolution"] == "1024x768"
    assert sdxl_locon["ss_total_batch_size"] == "6"
    assert sdxl_locon["ss_batch_size_per_device"] == "3"
    assert sdxl_locon["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert sdxl_locon["modelspec.implementation"] == "https://github.com/Stability-AI/generative-models"
    assert "modelspec.encoder_layer" not in sdxl_locon


def test_json_values_parse_and_tag_frequency_is_per_folder(sdxl_locon):
    for key in JSON_KEYS:
        assert isinstance(json.loads(sdxl_locon[key]), dict), key
    assert json.loads(sdxl_locon["ss_tag_frequency"]) == {
        "10_sks dog": {"sks": 4, "dog": 4, "1girl": 1}, "1_dog": {"dog": 2}}
    assert json.loads(sdxl_locon["ss_dataset_dirs"]) == {"10_sks dog": {"n_repeats": 10, "img_count": 4}}
    buckets = json.loads(sdxl_locon["ss_bucket_info"])["buckets"]
    assert buckets["0"] == {"resolution": [512, 512], "count": 40}
    config = json.loads(sdxl_locon["tt_config"])
    assert (config["conv_dim"], config["network_dim"], config["network_args"]) == (8, 16, ["algo=lora"])


@pytest.mark.parametrize("family,v_prediction,version,architecture,a1111", [
    ("sd1", False, "sd_v1", "stable-diffusion-v1/lora", "SD1"),
    ("sd1", True, "sd_v1_v", "stable-diffusion-v1/lora", "SD1"),
    ("sd2", False, "sd_v2", "stable-diffusion-v2-512/lora", "SD2"),
    ("sd2", True, "sd_v2_v", "stable-diffusion-v2-768-v/lora", "SD2"),
    ("sdxl", False, "sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora", "SDXL"),
    ("sdxl", True, "sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora", "SDXL"),
])
def test_family_keys_and_a1111_detection(tmp_path, family, v_prediction, version, architecture, a1111):
    cfg = make_cfg(tmp_path)
    for metadata in (build(cfg, family=family, v_prediction=v_prediction),
                     minimal_metadata(cfg, family=family, v_prediction=v_prediction,
                                      resolution=(512, 512), saved_at=SAVED_AT)):
        assert metadata["ss_base_model_version"] == version
        assert metadata["ss_v2"] == str(family == "sd2")
        assert metadata["modelspec.architecture"] == architecture
        assert metadata["modelspec.prediction_type"] == ("v" if v_prediction else "epsilon")
        assert a1111_family(metadata) == a1111


def test_minimal_metadata_keeps_only_network_keys_and_modelspec(tmp_path):
    cfg = make_cfg(tmp_path, conv_dim=4)
    metadata = minimal_metadata(cfg, family="sd1", v_prediction=False, resolution=(512, 512),
                                saved_at=SAVED_AT)
    assert sorted(k for k in metadata if k.startswith("ss_")) == sorted([
        "ss_v2", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha",
        "ss_network_args"])
    assert set(MODELSPEC_KEYS) <= set(metadata)
    assert metadata["modelspec.title"] == "last"


def test_date_timesteps_seed_and_steps(tmp_path):
    cfg = make_cfg(tmp_path, min_timestep=100, seed=None, max_train_steps=1600)
    metadata = build(cfg, seed=1234, max_train_steps=4000)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", metadata["modelspec.date"])
    assert metadata["modelspec.timestep_range"] == "100,1000"
    assert (metadata["ss_seed"], metadata["ss_max_train_steps"]) == ("1234", "4000")
    assert build(make_cfg(tmp_path, max_timestep=900))["modelspec.timestep_range"] == "0,900"
    assert build(cfg)["ss_seed"] == "None"


def test_base_model_name_and_hashes(tmp_path):
    cfg = make_cfg(tmp_path)
    metadata = build(cfg, base_model_hashes=("cc6cb27d", "a" * 64))
    assert (metadata["ss_sd_model_hash"], metadata["ss_new_sd_model_hash"]) == ("cc6cb27d", "a" * 64)
    folder = tmp_path / "diffusers-model"
    folder.mkdir()
    assert build(cfg, base_model_path=str(folder) + "/")["ss_sd_model_name"] == "diffusers-model"
    assert build(cfg, base_model_path="/home/someone/models/m.ckpt")["ss_sd_model_name"] == "m.ckpt"


def test_tt_config_paths_are_base_names_unless_asked(tmp_path):
    cfg = make_cfg(tmp_path, network_weights=str(tmp_path / "old" / "start.safetensors"))
    config = json.loads(build(cfg)["tt_config"])
    assert config["pretrained_model_name_or_path"] == "v1-5-pruned-emaonly.safetensors"
    assert config["network_weights"] == "start.safetensors"
    assert config["output_dir"] == tmp_path.name
    assert config["reg_data_dir"] is None
    full = json.loads(build(cfg, full_paths=True)["tt_config"])
    assert full["pretrained_model_name_or_path"] == cfg.pretrained_model_name_or_path
    assert str(tmp_path) not in build(cfg)["tt_config"]


def test_path_options_are_string_options_of_the_registry():
    assert all(get_param(name).type is str for name in PATH_OPTIONS)


def test_dataset_summary_dataclass_is_accepted(tmp_path):
    cfg = make_cfg(tmp_path)
    metadata = build(cfg, dataset_summary=DatasetSummary(**summary()))
    assert metadata["ss_num_reg_images"] == "2"
    assert json.loads(metadata["ss_reg_dataset_dirs"]) == {"1_dog": {"n_repeats": 1, "img_count": 2}}


@pytest.mark.parametrize("overrides,message", [
    ({"family": "sd3"}, "sd3"),
    ({"resolution": (512,)}, "resolution"),
    ({"resolution": (512.5, 512)}, "positive whole numbers"),
    ({"dataset_summary": {"num_train_images": 1}}, "lacks num_reg_images"),
    ({"dataset_summary": {**summary(), "tag_frequency": ["a"]}}, "ss_tag_frequency"),
    ({"base_model_path": ""}, "base model path is empty"),
    ({"base_model_hashes": ("abc",)}, "legacy hash, sha256"),
])
def test_bad_input_is_named(tmp_path, overrides, message):
    with pytest.raises(MetadataError, match=re.escape(message)):
        build(make_cfg(tmp_path), **overrides)


def test_metadata_survives_a_safetensors_file_with_hashes(tmp_path, sd1_lora):
    tensors = {"lora_unet_a.lora_down.weight": torch.ones(2, 4), "lora_unet_a.alpha": torch.tensor(2.0)}
    metadata = add_sshs_hashes(tensors, sd1_lora)
    path = tmp_path / "mychar.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    with safe_open(str(path), "pt") as handle:
        stored = handle.metadata()
    assert stored == metadata
    assert stored["sshs_model_hash"] == safetensors_file_data_sha256(path)


def test_session_ids_are_in_range():
    ids = {new_session_id() for _ in range(20)}
    assert all(0 <= i < 2**32 for i in ids) and len(ids) > 1
