"""The checkpoint factory: real-size layouts equal kohya's converters' output, tiny ones keep every key.

The digests pin the key names and shapes that kohya-ss/sd-scripts' own converters produce for the
released models (``../shared/harness/make_ckpt.py --arch sd15|sdxl``: diffusers/transformers models
of the released configs renamed by ``model_util.convert_unet_state_dict_to_sd``,
``convert_vae_state_dict``, ``sdxl_model_util.convert_diffusers_unet_state_dict_to_sdxl`` and
``convert_text_encoder_2_state_dict_to_sdxl``; kohya 48d368fa). The harness README reports those
layouts identical, key by key, to the key lists of the real v1-5 and sd_xl_base_1.0 files. To
recompute: build them on the meta device and hash ``sorted(f"{key} {list(shape)}")`` joined by
newlines, per part. (Those files also carry 14 LDM schedule/EMA buffers in SD1.5; we do not write them.)
"""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from lib_train_tools.models import checkpoint_factory as factory

# (family, part prefix, tensors, parameters without position_ids/logit_scale, sha256 of the key/shape list)
KOHYA_LAYOUTS = [
    ("sd1", "model.diffusion_model.", 686, 859_520_964,
     "8c2cafd295071b39e19613339f72e2cd3530e8317a7ac23263132b5c8cfe52a4"),
    ("sd1", "first_stage_model.", 248, 83_653_863,
     "e9d56f72afb2bd81acba4f3ebcb7806ba50f82607dd976f1f7fe674712c1b01b"),
    ("sd1", "cond_stage_model.transformer.", 197, 123_060_480,
     "0b6ba4295bba7fbdac16998fbcb6fb95e91e046d69ec2355a38a50bc5e197bbe"),
    ("sdxl", "model.diffusion_model.", 1680, 2_567_463_684,
     "3884182d449c8837466d5c933309621d1b023f396b9b342271ac74525ee79408"),
    ("sdxl", "first_stage_model.", 248, 83_653_863,
     "e9d56f72afb2bd81acba4f3ebcb7806ba50f82607dd976f1f7fe674712c1b01b"),
    ("sdxl", "conditioner.embedders.0.transformer.", 197, 123_060_480,
     "aa2ff5386e4836f821448c1542352a8f89869e1b5fe8c60a2e0110e70ec2d43c"),
    ("sdxl", "conditioner.embedders.1.model.", 390, 694_659_840,
     "6de5e43e27b9a399162b32841105ed466f183f6ec4059a7fd5574bc5a34d4952"),
]


def _meta_state(family: str, size: str) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return factory.build_state_dict(family, size=size)


@pytest.fixture(scope="module")
def real_states() -> dict[str, dict[str, torch.Tensor]]:
    return {family: _meta_state(family, "real") for family in ("sd1", "sdxl")}


@pytest.mark.parametrize("family,prefix,tensors,params,digest", KOHYA_LAYOUTS,
                         ids=[f"{f}-{p.rstrip('.')}" for f, p, *_ in KOHYA_LAYOUTS])
def test_real_layout_equals_kohya_converters(real_states, family, prefix, tensors, params, digest):
    part = {k: v for k, v in real_states[family].items() if k.startswith(prefix)}
    lines = sorted(f"{key} {list(value.shape)}" for key, value in part.items())
    n_params = sum(math.prod(v.shape) for k, v in part.items() if not k.endswith(("position_ids", "logit_scale")))
    print(f"\n{family} {prefix}: {len(part)} tensors, {n_params:,} parameters")
    assert (len(part), n_params) == (tensors, params)
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == digest


def test_real_sd1_has_nothing_outside_the_three_parts(real_states):
    prefixes = tuple(p for f, p, *_ in KOHYA_LAYOUTS if f == "sd1")
    assert all(k.startswith(prefixes) for k in real_states["sd1"])
    assert len(real_states["sd1"]) == 686 + 248 + 197


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_tiny_files_keep_every_key_of_the_real_layout(family):
    tiny, real = _meta_state(family, "tiny"), _meta_state(family, "real")
    assert tiny.keys() == real.keys()
    assert all(tiny[k].dim() == real[k].dim() for k in real)
