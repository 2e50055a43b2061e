"""The VRAM estimate line: shown once the base model family is known, for the options a run would get."""

from __future__ import annotations

import re

from lib_train_tools.train.model_sizes import model_sizes
from lib_train_tools.ui.vram import Accelerator, vram_text

CPU = Accelerator("cpu")


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
    assert "Counted for the checkpoint's header" in vram_text({}, arch, CPU)
    assert "Counted for the released SD1 sizes" in vram_text({}, "sd1", CPU)
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
    lower = re.search(r"Would lower it: (.*)\.$", card).group(1)
    first = re.match(r"([a-z_]+ [^(]+) \(about ([\d.]+) GiB\)", lower)
    assert first.group(1).strip() == "gradient_checkpointing on"  # the biggest saving comes first
    assert float(first.group(2)) < gib(card)
    saved_all = vram_text({"cache_latents": True, "gradient_checkpointing": True, "mixed_precision": "bf16",
                           "network_train_unet_only": True, "optimizer_type": "Adafactor"}, "sdxl", CPU)
    assert "Would lower it" not in saved_all
