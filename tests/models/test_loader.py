"""Loading single-file checkpoints: formats, detection, prediction type and every bad-file message."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lib_train_tools.models import checkpoint_factory as factory
from lib_train_tools.models import clip_layout
from lib_train_tools.models.checkpoint_file import CheckpointError, TensorFile
from lib_train_tools.models.clip import CLIP_L, OPENCLIP_BIGG, OPENCLIP_H_SD2
from lib_train_tools.models.detect import detect_architecture
from lib_train_tools.models.loader import load_architecture, load_checkpoint
from lib_train_tools.models.unet import SD1_UNET, SD2_UNET, SDXL_UNET
from lib_train_tools.models.vae import SD_VAE, SDXL_VAE


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ckpts")


def _write(ckpt_dir: Path, family: str, suffix: str) -> Path:
    path = ckpt_dir / f"{family}{suffix}"
    if not path.exists():
        factory.write_checkpoint(path, family=family, seed=1)
    return path


def _all_tensors(models) -> dict[str, torch.Tensor]:
    out = {f"unet.{k}": v for k, v in models.unet.state_dict().items()}
    out.update({f"vae.{k}": v for k, v in models.vae.state_dict().items()})
    for i, te in enumerate(models.text_encoders):
        out.update({f"te{i}.{k}": v for k, v in te.state_dict().items()})
    return out


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_safetensors_and_ckpt_give_identical_modules(ckpt_dir, family):
    a = load_checkpoint(_write(ckpt_dir, family, ".safetensors"))
    b = load_checkpoint(_write(ckpt_dir, family, ".ckpt"))
    ta, tb = _all_tensors(a), _all_tensors(b)
    assert ta.keys() == tb.keys()
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert a.architecture == b.architecture


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_detected_architecture_equals_the_recipe(ckpt_dir, family):
    arch = load_architecture(_write(ckpt_dir, family, ".safetensors"))
    r = factory.recipe(family)
    assert arch.family == family
    assert arch.unet == r.unet
    assert arch.vae == r.vae
    assert [s.config for s in arch.text_encoders] == [t.config for t in r.text_encoders]


def test_loaded_weights_equal_the_file_and_are_cast(ckpt_dir):
    path = _write(ckpt_dir, "sd1", ".safetensors")
    raw = load_file(str(path))
    models = load_checkpoint(path, dtype=torch.bfloat16)
    key = "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    assert models.unet.state_dict()[key].dtype == torch.bfloat16
    assert torch.equal(models.unet.state_dict()[key], raw["model.diffusion_model." + key].to(torch.bfloat16))
    te_key = "text_model.encoder.layers.0.self_attn.q_proj.weight"
    assert torch.equal(models.text_encoders[0].state_dict()[te_key].float(),
                       raw["cond_stage_model.transformer." + te_key].bfloat16().float())
    assert not any(p.requires_grad for p in models.unet.parameters())


def test_sd2_open_clip_layout_keeps_23_of_24_layers_and_splits_in_proj(ckpt_dir):
    path = _write(ckpt_dir, "sd2", ".safetensors")
    raw = load_file(str(path))
    te = load_checkpoint(path, parts=("text_encoders",)).text_encoders[0]
    assert te.config.num_layers == 23
    assert "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight" in raw
    fused = raw["cond_stage_model.model.transformer.resblocks.5.attn.in_proj_weight"].float()
    q, k, v = fused.chunk(3, dim=0)
    sd = te.state_dict()
    assert torch.equal(sd["text_model.encoder.layers.5.self_attn.k_proj.weight"], k)
    assert torch.equal(sd["text_model.encoder.layers.5.self_attn.v_proj.weight"], v)


def test_sdxl_text_projection_is_transposed(ckpt_dir):
    path = _write(ckpt_dir, "sdxl", ".safetensors")
    raw = load_file(str(path))
    te2 = load_checkpoint(path, parts=("text_encoders",)).text_encoders[1]
    proj = raw["conditioner.embedders.1.model.text_projection"].float()
    assert torch.equal(te2.state_dict()["text_projection.weight"], proj.T)


@pytest.mark.parametrize("family,expected_v", [("sd1", False), ("sd2", False), ("sd2-v", True), ("sdxl", False)])
def test_prediction_type_is_detected_and_explained(ckpt_dir, family, expected_v):
    models = load_checkpoint(_write(ckpt_dir, family, ".safetensors"))
    assert models.v_prediction is expected_v
    assert models.prediction.reason
    if family.startswith("sd2"):
        assert "test denoise" in models.prediction.reason


def test_prediction_override_wins(ckpt_dir):
    models = load_checkpoint(_write(ckpt_dir, "sd2-v", ".safetensors"), v_prediction=False)
    assert models.v_prediction is False and "explicitly" in models.prediction.reason


def test_old_sd1_layout_without_text_model_and_ema_keys(ckpt_dir, tmp_path):
    raw = load_file(str(_write(ckpt_dir, "sd1", ".safetensors")))
    old = {k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer."): v
           for k, v in raw.items()}
    old["model_ema.decay"] = torch.tensor(0.9999)
    old["model_ema.diffusion_modelinput_blocks00weight"] = raw["model.diffusion_model.input_blocks.0.0.weight"].clone()
    path = tmp_path / "old.safetensors"
    save_file(old, str(path))
    models = load_checkpoint(path)
    new = load_checkpoint(_write(ckpt_dir, "sd1", ".safetensors"))
    assert all(torch.equal(a, b) for a, b in zip(models.text_encoders[0].state_dict().values(),
                                                 new.text_encoders[0].state_dict().values()))
    assert "model_ema.decay" in models.ignored_keys


class _MetaFile:
    """Keys and shapes of a real-size checkpoint without any memory: what detection needs."""

    def __init__(self, family: str):
        self.path = f"<meta {family}>"
        with torch.device("meta"):
            state = factory.build_state_dict(family, size="real", dtype=torch.float32)
        self._shapes = {k: tuple(v.shape) for k, v in state.items()}

    def keys(self):
        return list(self._shapes)

    def shape(self, key):
        return self._shapes[key]


@pytest.mark.parametrize("family,unet,vae,tes", [
    ("sd1", SD1_UNET, SD_VAE, [CLIP_L]),
    ("sd2", SD2_UNET, SD_VAE, [OPENCLIP_H_SD2]),
    ("sdxl", SDXL_UNET, SDXL_VAE, [CLIP_L, OPENCLIP_BIGG]),
])
def test_real_size_layouts_are_detected_with_released_widths(family, unet, vae, tes):
    arch = detect_architecture(_MetaFile(family))
    assert arch.family == family
    assert arch.unet == unet
    assert arch.vae == vae
    assert [s.config for s in arch.text_encoders] == tes


# ----------------------------------------------------------------------------- bad files

def _expect_error(path, *words):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert Path(path).name in message
    for word in words:
        assert word in message, message
    return message


def test_lora_file_is_named_as_such(tmp_path):
    path = tmp_path / "my_lora.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
               "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(4.0)}, str(path))
    _expect_error(path, "LoRA file", "not a base model")


@pytest.mark.parametrize("prefix", ["", "first_stage_model."])
def test_vae_file_is_named_as_such(ckpt_dir, tmp_path, prefix):
    raw = load_file(str(_write(ckpt_dir, "sd1", ".safetensors")))
    vae = {prefix + k.removeprefix("first_stage_model."): v for k, v in raw.items()
           if k.startswith("first_stage_model.")}
    path = tmp_path / "vae.safetensors"
    save_file(vae, str(path))
    _expect_error(path, "VAE file")


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_truncated_file_is_reported(ckpt_dir, tmp_path, suffix):
    data = _write(ckpt_dir, "sd1", suffix).read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "truncated or corrupt")


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_garbage_and_empty_files_are_reported(tmp_path, suffix):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"this is not a checkpoint at all" * 10)
    _expect_error(path, "corrupt")
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    _expect_error(empty, "empty")


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"x": torch.zeros(1)}, "obj": Path("x")}, f)
    _expect_error(path, "cannot be loaded safely")


def test_unknown_architecture_lists_missing_tensors(ckpt_dir, tmp_path):
    raw = load_file(str(_write(ckpt_dir, "sd1", ".safetensors")))
    no_te = {k: v for k, v in raw.items() if not k.startswith("cond_stage_model.")}
    path = tmp_path / "unet_vae_only.safetensors"
    save_file(no_te, str(path))
    message = _expect_error(path, "unknown architecture", "missing expected tensors")
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in message
    assert "model.diffusion_model.input_blocks.0.0.weight" not in message


def test_missing_file_and_wrong_suffix(tmp_path):
    _expect_error(tmp_path / "nope.safetensors", "not found")
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    _expect_error(other, "unsupported file type")


def test_mismatched_layout_names_the_part(ckpt_dir, tmp_path):
    raw = load_file(str(_write(ckpt_dir, "sd1", ".safetensors")))
    raw = {k: v for k, v in raw.items() if "middle_block.1.norm" not in k}
    path = tmp_path / "damaged.safetensors"
    save_file(raw, str(path))
    _expect_error(path, "U-Net tensors do not match", "middle_block.1.norm.weight")


# ----------------------------------------------------------------------------- files written by other code

HARNESS_DATA = Path(os.environ.get("HARNESS_DATA", Path(__file__).resolve().parents[2].parent / "harness-data"))
HARNESS_CKPT = HARNESS_DATA / "ckpt"
LDM_EXTRAS = {"betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
              "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
              "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
              "model_ema.decay", "model_ema.num_updates"}


def _harness_file(name: str) -> Path:
    path = HARNESS_CKPT / name
    if not path.is_file():
        pytest.skip(f"{path} not present (written by ../shared/harness/make_ckpt.py; set HARNESS_DATA)")
    return path


def test_harness_tiny15_file_loads_with_every_weight_used():
    """tiny15 is written by kohya's converters (fp16, with the 14 LDM schedule/EMA buffers)."""
    path = _harness_file("tiny15_random.safetensors")
    models = load_checkpoint(path)
    assert models.family == "sd1" and not models.v_prediction
    assert set(models.ignored_keys) == LDM_EXTRAS
    with TensorFile(path) as f:
        unet, vae = f.tensors("model.diffusion_model.", torch.float32), f.tensors("first_stage_model.", torch.float32)
        te = clip_layout.from_hf_layout(f.tensors("cond_stage_model.transformer.", torch.float32,
                                                  skip=("position_ids",)))
    for module, weights in ((models.unet, unet), (models.vae, vae), (models.text_encoders[0], te)):
        state = module.state_dict()
        assert state.keys() == weights.keys()
        assert all(torch.equal(state[k], weights[k]) for k in state)


def test_harness_sd15_file_has_exactly_our_real_layout():
    """The 2.1 GB real-size SD1.5 file: detection from its header and key-by-key equality, no weights read."""
    path = _harness_file("sd15_random.safetensors")
    arch = load_architecture(path)
    assert (arch.family, arch.unet, arch.vae, [s.config for s in arch.text_encoders]) == \
        ("sd1", SD1_UNET, SD_VAE, [CLIP_L])
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in factory.build_state_dict("sd1", size="real").items()}
    with TensorFile(path) as f:
        theirs = {k: f.shape(k) for k in f.keys()}
    assert set(theirs) - set(ours) == LDM_EXTRAS
    assert {k: theirs[k] for k in ours} == ours


@pytest.mark.parametrize("dropped", ["cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
                                     "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"])
def test_incomplete_file_names_the_tensor_it_lacks(ckpt_dir, tmp_path, dropped):
    raw = load_file(str(_write(ckpt_dir, "sd1", ".safetensors")))
    if "to_k" in dropped:  # detection looks for any attn2.to_k: take them all away
        raw = {k: v for k, v in raw.items() if not k.endswith("attn2.to_k.weight")}
    raw.pop(dropped, None)
    path = tmp_path / "partial.safetensors"
    save_file(raw, str(path))
    message = _expect_error(path, "unknown architecture", "looks like SD1.x", "lacks the tensor")
    assert ("attn2.to_k.weight" if "to_k" in dropped else dropped) in message


def test_damaged_header_entry_is_reported(tmp_path):
    header = b'{"a": {"dtype": "F32", "shape": "oops", "data_offsets": [0, 4]}}'
    path = tmp_path / "damaged_header.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    _expect_error(path, "truncated or corrupt", "header entry of tensor 'a' is damaged")
