"""Our LoRA files against the test-only reference libraries.

1. The key set equals what kohya's selection rule (containers by class name, then every Linear/Conv2d
   inside) gives on diffusers' / transformers' own models of the same architecture.
2. diffusers' kohya converter (as ``lora_state_dict`` calls it) accepts every key, and each converted
   key names a real Linear/Conv2d of diffusers' models with a fitting shape.
"""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from lib_train_tools.models.checkpoint_factory import recipe
from lib_train_tools.network import create_network

from .diffusers_twins import clip_text_config, diffusers_unet_config
from .models import build_models, randomize

UNET_CONTAINERS = ("Transformer2DModel",)
LOCON_CONTAINERS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
TEXT_CONTAINERS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")


@pytest.fixture(scope="module")
def diffusers():
    return pytest.importorskip("diffusers")


def _reference_models(diffusers, family: str, size: str) -> tuple[nn.Module, dict[str, nn.Module]]:
    """diffusers U-Net and transformers text encoder(s) with our architecture, on the meta device."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    r = recipe(family, size)
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel(**diffusers_unet_config(r.unet))
        tes = {}
        for component, placement in zip(("text_encoder", "text_encoder_2"), r.text_encoders):
            cls = CLIPTextModelWithProjection if placement.config.projection_dim else CLIPTextModel
            tes[component] = cls(clip_text_config(placement.config))
    return unet, tes


def _kohya_rule(root: nn.Module, prefix: str, containers: tuple[str, ...], rank: int,
                conv_rank: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """kohya's selection restated: name -> (down shape, up shape) for every layer inside a container."""
    found = {}
    for path, container in root.named_modules():
        if type(container).__name__ not in containers:
            continue
        for child_path, child in container.named_modules():
            name = f"{prefix}.{path}.{child_path}".replace(".", "_")
            if isinstance(child, nn.Linear):
                found[name] = ((rank, child.in_features), (child.out_features, rank))
            elif isinstance(child, nn.Conv2d):
                r = rank if tuple(child.kernel_size) == (1, 1) else conv_rank
                found[name] = ((r, child.in_channels, *child.kernel_size), (child.out_channels, r, 1, 1))
    return found


def test_sd1_locon_key_set_and_shapes_equal_kohya_rule_on_diffusers_models(diffusers) -> None:
    unet, tes = _reference_models(diffusers, "sd1", "real")
    expected = _kohya_rule(unet, "lora_unet", UNET_CONTAINERS + LOCON_CONTAINERS, 4, 8)
    expected.update(_kohya_rule(tes["text_encoder"], "lora_te", TEXT_CONTAINERS, 4, 8))
    ours = create_network(*build_models("sd1", "real"), "sd1", 4, 1.0, conv_dim=8).state_dict()
    assert len(expected) == 278 + 72
    assert set(ours) == {f"{n}.{p}" for n in expected for p in ("lora_down.weight", "lora_up.weight", "alpha")}
    for name, (down, up) in expected.items():
        assert (tuple(ours[f"{name}.lora_down.weight"].shape), tuple(ours[f"{name}.lora_up.weight"].shape)) \
            == (down, up), name


def test_sd2_key_set_equals_kohya_rule_with_1x1_projections(diffusers) -> None:
    unet, tes = _reference_models(diffusers, "sd2", "real")
    expected = _kohya_rule(unet, "lora_unet", UNET_CONTAINERS, 4, 4)
    expected.update(_kohya_rule(tes["text_encoder"], "lora_te", TEXT_CONTAINERS, 4, 4))
    ours = create_network(*build_models("sd2", "real"), "sd2", 4, 1.0).state_dict()
    assert {k.split(".")[0] for k in ours} == set(expected)
    for name, (down, up) in expected.items():
        got = tuple(ours[f"{name}.lora_down.weight"].shape)
        # kohya trains SD2 from a single file with 1x1-conv projections: [r, in, 1, 1]
        assert got == (down + (1, 1) if name.endswith(("proj_in", "proj_out")) else down), name


def _check_peft_keys(peft: dict[str, torch.Tensor], root: nn.Module, label: str) -> set[str]:
    """Each key must be <module>.lora_A/B.weight of a real Linear/Conv2d of ``root`` with fitting shape."""
    modules = set()
    for key, value in peft.items():
        match = re.fullmatch(r"(.*)\.(lora_A|lora_B)\.weight", key)
        assert match, f"{label}: converted key {key} is not <module>.lora_A/B.weight"
        path, which = match.groups()
        layer = root.get_submodule(path)
        modules.add(path)
        if isinstance(layer, nn.Linear):
            want = (value.shape[0], layer.in_features) if which == "lora_A" else (layer.out_features, value.shape[1])
            assert tuple(value.shape[:2]) == want and value.shape[2:] in ((), (1, 1)), key
        else:
            assert isinstance(layer, nn.Conv2d), f"{label}: {path} is a {type(layer).__name__}"
            channels = layer.in_channels if which == "lora_A" else layer.out_channels
            assert value.shape[1 if which == "lora_A" else 0] == channels, key
            kernel = tuple(layer.kernel_size) if which == "lora_A" else (1, 1)
            assert tuple(value.shape[2:]) == kernel, key
    return modules


@pytest.mark.parametrize("family, conv_dim", [("sd1", 4), ("sd2", None), ("sdxl", 4)])
def test_diffusers_converter_accepts_every_key(diffusers, family: str, conv_dim: int | None) -> None:
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin, StableDiffusionXLLoraLoaderMixin
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft, \
        convert_unet_state_dict_to_peft

    network = create_network(*build_models(family), family, 4, 2.0, conv_dim=conv_dim, conv_alpha=2.0)
    randomize(network, seed=5)
    ours = network.state_dict()
    unet, tes = _reference_models(diffusers, family, "tiny")
    if family == "sdxl":
        converted, alphas = StableDiffusionXLLoraLoaderMixin.lora_state_dict(dict(ours), unet_config=unet.config)
    else:
        converted, alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(dict(ours))
    assert len(converted) == 2 * len(network.loras()) and len(alphas) == len(network.loras())
    assert set(alphas.values()) == {2.0}
    found = {}
    for component, root in [("unet", unet)] + list(tes.items()):
        part = {k[len(component) + 1:]: v for k, v in converted.items() if k.split(".", 1)[0] == component}
        if component == "unet":
            peft = convert_unet_state_dict_to_peft(part)
        else:
            peft = convert_state_dict_to_peft(convert_state_dict_to_diffusers(part))
        found[component] = _check_peft_keys(peft, root, component)
    assert sum(len(v) for v in found.values()) == len(network.loras())
    counts = network.module_counts()
    assert len(found["unet"]) == counts["lora_unet"]
    if family == "sdxl":
        assert (len(found["text_encoder"]), len(found["text_encoder_2"])) == (counts["lora_te1"], counts["lora_te2"])
    else:
        assert len(found["text_encoder"]) == counts["lora_te"]
