"""The VRAM estimate line: shown once the base model family is known, for the options a run would get.

Most tests look at the quick formula's figure, which the line shows until the background trace is
done (`quick_only` keeps the trace from ever finishing); the traced figure itself is tested on the
tiny checkpoint with ``wait=True``.
"""

from __future__ import annotations

import re

import pytest
import torch

from lib_train_tools.models.checkpoint_factory import write_checkpoint
from lib_train_tools.models.loader import load_architecture
from lib_train_tools.train.model_sizes import model_sizes
from lib_train_tools import torch_compat
from lib_train_tools.train.traced_estimate import TraceCache

TRACEABLE = pytest.mark.skipif(not torch_compat.storage_lifetimes_traceable(),
                               reason="this torch cannot be traced (torch_compat.storage_lifetimes_traceable)")
from lib_train_tools.ui import vram
from lib_train_tools.ui.vram import Accelerator, traced_settings, vram_text

CPU = Accelerator("cpu")


class _NeverTraced(TraceCache):
    def get(self, arch, settings, wait=False, patience=0.0):
        return None


@pytest.fixture(autouse=True)
def quick_only(monkeypatch):
    monkeypatch.setattr(vram, "TRACES", _NeverTraced())


def gib(text: str) -> float:
    return float(re.search(r"about ([\d.]+) GiB", text).group(1))


def test_estimate_grows_with_batch_size_and_resolution():
    small = vram_text({"train_batch_size": 1}, "sd1")
    assert gib(vram_text({"train_batch_size": 4}, "sd1")) > gib(small)
    assert gib(vram_text({}, "sdxl")) > gib(small)  # SDXL defaults to 1024 pixels
    assert "choose a readable base model" in vram_text({}, None)


def test_locon_estimates_the_convolutions_with_network_dim_by_default():
    lora = gib(vram_text({"network_dim": 64}, "sd1"))
    locon = gib(vram_text({"network_dim": 64, "network_type": "LoCon"}, "sd1"))
    assert locon > lora
    assert vram_text({"network_dim": 64, "network_type": "LoCon", "conv_dim": 64}, "sd1") == \
        vram_text({"network_dim": 64, "network_type": "LoCon"}, "sd1")
    assert vram_text({"network_dim": 64, "conv_dim": 512}, "sd1") == vram_text({"network_dim": 64}, "sd1")
    assert "unavailable" in vram_text({"network_type": "LoHa"}, "sd1")


def test_the_estimate_uses_the_chosen_checkpoints_own_sizes(tmp_path):
    from lib_train_tools.models.checkpoint_factory import write_checkpoint
    from lib_train_tools.models.loader import load_architecture
    from lib_train_tools.train.memory_estimate import estimate_vram

    path = write_checkpoint(tmp_path / "tiny.safetensors", family="sd1")
    arch = load_architecture(path)
    tiny, released = gib(vram_text({}, arch, CPU)), gib(vram_text({}, "sd1", CPU))
    assert tiny < 2.0 < 4.0 < released  # the tiny demo model is not estimated like SD1.5
    assert "Sizes from the checkpoint's header" in vram_text({}, arch, CPU)
    assert "Sizes from the released SD1 layout" in vram_text({}, "sd1", CPU)
    exact = estimate_vram("sd1", sizes=model_sizes(arch), network_dim=4, mixed_precision="no")
    assert exact.parts["base_weights"] == round(sum(_count_file(path)) * 4 / 2**20, 1)


def _count_file(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return [f.get_slice(k).get_shape() and _numel(f.get_slice(k).get_shape()) for k in f.keys()
                if k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model."))
                and "position_ids" not in k]


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def test_it_says_where_training_runs_and_what_would_lower_it():
    on_cpu = vram_text({"mixed_precision": "no", "gradient_checkpointing": False}, "sd1", CPU)
    assert on_cpu.startswith("No GPU found: training will run on the CPU, using about ")
    card = vram_text({}, "sdxl", Accelerator("cuda", "NVIDIA GeForce RTX 3060", 12.0))
    assert re.match(r"Estimated VRAM: about [\d.]+ GiB of the 12.0 GiB of the NVIDIA GeForce RTX 3060\.", card)
    assert "the traced figure is being computed" in card
    lower = re.search(r"Would lower it \(scored with the quick formula\): (.*)\.$", card).group(1)
    savings = re.findall(r"([a-z_]+ [^(]+?) \(saves about ([\d.]+) GiB\)", lower)
    assert [what.lstrip(", ") for what, _ in savings[:2]] == ["mixed_precision bf16 or fp16",
                                                             "gradient_checkpointing on"]
    values = [float(saved) for _, saved in savings]
    assert values == sorted(values, reverse=True) and 0 < values[0] < gib(card)  # the biggest saving first
    saved_all = vram_text({"cache_latents": True, "gradient_checkpointing": True, "mixed_precision": "bf16",
                           "network_train_unet_only": True, "optimizer_type": "Adafactor"}, "sdxl", CPU)
    assert "Would lower it" not in saved_all


@TRACEABLE
def test_the_traced_figure_with_its_parts_and_the_cards_free_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(vram, "TRACES", TraceCache())
    arch = load_architecture(write_checkpoint(tmp_path / "tiny.safetensors", family="sd1"))
    card = Accelerator("cuda", "NVIDIA GeForce RTX 3060", 12.0, 10.25)
    text = vram_text({"mixed_precision": "fp16", "network_dim": 8}, arch, card, wait=True)
    lines = text.split("\n")
    assert re.match(r"Estimated VRAM: about [\d.]+ GiB of the 12.0 GiB of the NVIDIA GeForce RTX 3060 "
                    r"\(10.2 GiB free now\)\.$", lines[0])
    assert "computed from a traced training step of this checkpoint" in lines[1]
    parts = re.match(r"Parts: frozen weights ([\d.]+) GiB, LoRA ([\d.]+) GiB, optimizer state ([\d.]+) GiB, "
                     r"activations and gradients at the peak \((forward|backward|optimizer step)\) ([\d.]+) GiB, "
                     r"CUDA context ([\d.]+) GiB\.$", lines[2])
    assert parts and float(parts.group(6)) == 0.5
    assert gib(text) == pytest.approx(sum(float(parts.group(i)) for i in (1, 2, 3, 5, 6)), abs=0.15)


def test_trace_settings_follow_the_sessions_rules():
    plain = traced_settings({}, "sd1")
    assert (plain.resolution, plain.vae_on_card, plain.vae_each_step, plain.text_encoders_on_card) == \
        ((512, 512), False, False, True)
    crop = traced_settings({"random_crop": True}, "sdxl")
    assert (crop.resolution, crop.vae_on_card, crop.vae_each_step) == ((1024, 1024), True, True)
    assert traced_settings({"random_crop": True, "cache_latents": True}, "sd1").vae_each_step is False
    cached = traced_settings({"cache_text_encoder_outputs": True, "network_train_unet_only": True}, "sdxl")
    assert (cached.train_text_encoder, cached.text_encoders_on_card) == (False, False)
    fp8 = traced_settings({"fp8_base_unet": True}, "sd1")
    assert (fp8.weight_dtype, fp8.text_encoder_weight_dtype) == (torch.float8_e4m3fn, None)
    assert traced_settings({"fp8_base": True}, "sd1").text_encoder_weight_dtype == torch.float8_e4m3fn
    assert traced_settings({"sample_prompts": "a cat", "cache_text_encoder_outputs": True,
                            "network_train_unet_only": True}, "sdxl").text_encoders_on_card is True


@TRACEABLE
def test_on_the_cpu_fp16_is_traced_as_float32_without_a_cuda_context(tmp_path, monkeypatch):
    monkeypatch.setattr(vram, "TRACES", TraceCache())
    arch = load_architecture(write_checkpoint(tmp_path / "tiny.safetensors", family="sd1"))
    options = {"mixed_precision": "fp16", "network_dim": 8}
    on_cpu = vram_text(options, arch, CPU, wait=True)
    assert "CUDA context" not in on_cpu
    fp32_on_card = vram_text({**options, "mixed_precision": "no"}, arch, Accelerator("cuda"), wait=True)
    assert gib(on_cpu) == pytest.approx(gib(fp32_on_card) - 0.5, abs=0.15)  # the same trace, less the context


def test_a_failed_trace_shows_the_quick_figure_and_why(tmp_path, monkeypatch):
    from lib_train_tools.train import traced_estimate

    def fails(*args, **kwargs):
        raise RuntimeError("no memory for the trace")

    monkeypatch.setattr(vram, "TRACES", TraceCache())
    monkeypatch.setattr(traced_estimate, "trace_training_step", fails)
    arch = load_architecture(write_checkpoint(tmp_path / "tiny.safetensors", family="sd1"))
    text = vram_text({"gradient_checkpointing": True}, arch, Accelerator("cuda"), wait=True)
    assert re.search(r"the trace failed \(RuntimeError: no memory for the trace\), so this is the quick formula's "
                     r"figure", text)
    assert gib(text) > 0


def test_fp8_base_is_suggested_only_where_the_trainer_can_use_it():
    from lib_train_tools.ui.vram import _changes

    bf16 = {"mixed_precision": "bf16"}
    assert ("fp8_base on", {"fp8_base": True, "fp8_base_unet": False}) in _changes(bf16, "sdxl", fp8=True)
    assert all("fp8" not in what for what, _ in _changes(bf16, "sdxl", fp8=False))   # CPU, MPS, old torch
    assert all("fp8" not in what for what, _ in _changes({"mixed_precision": "no"}, "sdxl", fp8=True))


def test_a_torch_that_cannot_be_traced_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(vram, "TRACES", TraceCache())
    monkeypatch.setattr(torch_compat, "storage_lifetimes_traceable", lambda: False)   # torch 2.1 (A1111)
    monkeypatch.setattr(torch_compat, "version_text", lambda: "2.1.2+cu121")
    arch = load_architecture(write_checkpoint(tmp_path / "tiny.safetensors", family="sd1"))
    text = vram_text({}, arch, Accelerator("cuda"), wait=True)
    assert "not traced (torch 2.1.2+cu121 cannot be traced (its storages' lifetimes are not tracked; torch 2.3 " \
           "or newer is)), so this is the quick formula's figure" in text
    assert gib(text) > 0


@TRACEABLE
def test_a_background_trace_that_comes_within_the_patience_is_shown(tmp_path, monkeypatch):
    from lib_train_tools.train.traced_estimate import TraceSettings

    cache = TraceCache()
    arch = load_architecture(write_checkpoint(tmp_path / "tiny.safetensors", family="sd1"))
    settings = TraceSettings(resolution=(64, 64), network_dim=4, mixed_precision="no")
    assert cache.get(arch, settings) is None            # queued for the background thread, no waiting
    traced = cache.get(arch, settings, patience=120)    # the same request, waiting for the thread
    assert traced is not None and traced.traced_bytes > 0
    assert cache.get(arch, settings) is traced          # cached
