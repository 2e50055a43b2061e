"""Tests for the standalone preview renderer: our models, our sampler, a LoRA at a weight."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lib_train_tools.models.checkpoint_factory import write_checkpoint
from lib_train_tools.models.loader import load_checkpoint
from lib_train_tools.network import create_network, save_lora
from lib_train_tools.results.own_renderer import OwnSamplerRenderer
from lib_train_tools.results.preview import CellRequest
from lib_train_tools.train.sampling import SamplerError


class CountingLoader:
    def __init__(self):
        self.calls = []

    def __call__(self, path, **kwargs):
        self.calls.append(path)
        return load_checkpoint(path, **kwargs)


@pytest.fixture(scope="module")
def renderer():
    return OwnSamplerRenderer(loader=CountingLoader())


def _cell(base_model, lora=None, weight=1.0, seed=5, sampler="euler_a"):
    return CellRequest(base_model=base_model, lora_path=lora, weight=weight, prompt="a red cube",
                       negative_prompt="blurry", sampler=sampler, steps=3, cfg_scale=7.0, seed=seed,
                       width=64, height=64)


def _pixels(image):
    return np.asarray(image)


def _hooked_layers(models) -> list[str]:
    """Layers that still carry an instance-level forward (an applied LoRA adapter)."""
    parts = [("unet", models.unet), *((f"te{i}", te) for i, te in enumerate(models.text_encoders))]
    return [f"{part}.{name}" for part, root in parts for name, m in root.named_modules() if "forward" in m.__dict__]


def test_weight_zero_is_the_base_image_and_weight_one_is_not(renderer, base_model, lora_files) -> None:
    plain = _pixels(renderer.render(_cell(base_model)))
    zero = _pixels(renderer.render(_cell(base_model, lora_files["a"], weight=0.0)))
    one = _pixels(renderer.render(_cell(base_model, lora_files["a"], weight=1.0)))
    assert plain.shape == (64, 64, 3) and plain.std() > 1.0
    assert np.array_equal(zero, plain)
    assert np.abs(one.astype(int) - plain.astype(int)).mean() > 1.0


def test_no_lora_leaks_between_cells(renderer, base_model, lora_files) -> None:
    state = {k: v.clone() for k, v in renderer._base_models(base_model).unet.state_dict().items()}
    plain = _pixels(renderer.render(_cell(base_model, seed=9)))
    a = _pixels(renderer.render(_cell(base_model, lora_files["a"], seed=9)))
    b = _pixels(renderer.render(_cell(base_model, lora_files["b"], seed=9)))
    again = _pixels(renderer.render(_cell(base_model, seed=9)))
    assert not np.array_equal(a, b)
    assert np.array_equal(again, plain)
    models = renderer._base_models(base_model)
    assert _hooked_layers(models) == []
    assert all(torch.equal(v, models.unet.state_dict()[k]) for k, v in state.items())
    fresh = OwnSamplerRenderer()      # B alone on an untouched model gives the same picture
    assert np.array_equal(_pixels(fresh.render(_cell(base_model, lora_files["b"], seed=9))), b)


def test_base_loaded_once_and_reloaded_only_for_another_file(base_model, lora_files, tmp_path) -> None:
    loader = CountingLoader()
    renderer = OwnSamplerRenderer(loader=loader)
    for lora in (lora_files["a"], lora_files["b"], lora_files["a"]):
        for weight in (0.5, 1.0):
            renderer.render(_cell(base_model, lora, weight, sampler="ddim"))
    assert loader.calls == [base_model] and renderer.cached_base == base_model.resolve()
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(base_model.read_bytes())
    renderer.render(_cell(copy, lora_files["a"]))
    assert loader.calls == [base_model, copy]
    renderer.release()
    assert renderer.cached_base is None


def test_failed_sampling_still_removes_the_adapters(base_model, lora_files) -> None:
    renderer = OwnSamplerRenderer()
    with pytest.raises(SamplerError, match="steps"):     # raised inside sampling, adapters applied
        renderer.render(dataclasses.replace(_cell(base_model, lora_files["a"]), steps=0))
    assert _hooked_layers(renderer._base_models(base_model)) == []


def test_sdxl_with_both_text_encoders(tmp_path) -> None:
    base = write_checkpoint(tmp_path / "tiny-sdxl.safetensors", family="sdxl", seed=4)
    models = load_checkpoint(base)
    network = create_network(models.unet, models.text_encoders, "sdxl", 4, 2.0)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in network.parameters():
            param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    lora = save_lora(tmp_path / "xl.safetensors", network, {"ss_base_model_version": "sdxl_base_v1-0"})
    renderer = OwnSamplerRenderer()
    plain = _pixels(renderer.render(_cell(base)))
    assert np.array_equal(_pixels(renderer.render(_cell(base, lora, weight=0.0))), plain)
    assert not np.array_equal(_pixels(renderer.render(_cell(base, lora, weight=1.0))), plain)
    network_modules = renderer._network[2].module_counts()
    assert set(network_modules) == {"lora_unet", "lora_te1", "lora_te2"}
    assert _hooked_layers(renderer._base_models(base)) == []


def test_global_random_state_is_untouched(renderer, base_model, lora_files) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    OwnSamplerRenderer().render(_cell(base_model, lora_files["b"], weight=0.7))
    assert torch.equal(torch.rand(3), expected)
