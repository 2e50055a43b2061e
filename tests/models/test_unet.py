"""U-Net tests: parity with diffusers (SD1, SD2, SDXL), released key layouts and counts, checkpointing, errors."""
from __future__ import annotations

import sys
from types import ModuleType

import pytest
import torch
from torch import nn

from lib_train_tools.models import unet as unet_module
from lib_train_tools.models.blocks import timestep_embedding
from lib_train_tools.models.unet import (
    SD1_UNET,
    SD2_UNET,
    SDXL_UNET,
    TINY_SD1_UNET,
    TINY_SD2_UNET,
    TINY_SDXL_UNET,
    UNetConfig,
    UNetInputError,
    UNetModel,
    sdxl_size_embedding,
)

PREFIX = "model.diffusion_model."
TOLERANCE = 1e-4


@pytest.fixture
def diffusers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # transformers (pulled in by diffusers) probes torchvision once at first import; the installed one is broken.
    if "transformers" not in sys.modules:
        monkeypatch.setitem(sys.modules, "torchvision", None)
    return pytest.importorskip("diffusers")


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Every parameter random (also the out-convs and norms LDM would zero or set to one)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            centre = 1.0 if isinstance(module, (nn.GroupNorm, nn.LayerNorm)) else 0.0
            for name, param in module.named_parameters(recurse=False):
                offset = centre if name == "weight" else 0.0
                param.copy_(offset + 0.05 * torch.randn(param.shape, generator=gen))
    return model


def _diffusers_config(cfg: UNetConfig) -> dict:
    depths = [max(d, 1) for d in cfg.transformer_depth]
    assert depths[-1] == cfg.transformer_depth_middle, "diffusers takes the middle depth from the last level"
    down = ["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in cfg.transformer_depth]
    up = ["CrossAttnUpBlock2D" if d else "UpBlock2D" for d in reversed(cfg.transformer_depth)]
    config = dict(
        sample_size=16, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        down_block_types=down, up_block_types=up, block_out_channels=list(cfg.level_widths),
        layers_per_block=cfg.num_res_blocks, cross_attention_dim=cfg.context_dim,
        attention_head_dim=[cfg.heads_for(w) for w in cfg.level_widths],  # diffusers: a head COUNT here
        use_linear_projection=cfg.use_linear_proj, transformer_layers_per_block=depths,
        norm_num_groups=cfg.norm_groups,
    )
    if cfg.adm_in_channels:
        config.update(addition_embed_type="text_time", addition_time_embed_dim=256,
                      projection_class_embeddings_input_dim=cfg.adm_in_channels)
    return config


def _to_diffusers_layout(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    return convert_ldm_unet_checkpoint({PREFIX + k: v for k, v in state.items()}, config)


def _twin(diffusers: ModuleType, ours: UNetModel) -> nn.Module:
    config = _diffusers_config(ours.config)
    twin = diffusers.UNet2DConditionModel(**config).eval()
    twin.load_state_dict(_to_diffusers_layout(ours.state_dict(), config), strict=True)
    return twin


@pytest.mark.parametrize("cfg", [TINY_SD1_UNET, TINY_SD2_UNET, TINY_SDXL_UNET], ids=["sd1", "sd2", "sdxl"])
def test_forward_matches_diffusers(diffusers: ModuleType, cfg: UNetConfig) -> None:
    torch.manual_seed(0)
    ours = _randomize(UNetModel(cfg).eval(), seed=1)
    twin = _twin(diffusers, ours)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, cfg.in_channels, 16, 16, generator=gen)
    t = torch.tensor([17, 941])
    context = torch.randn(2, 77, cfg.context_dim, generator=gen)
    y, added = None, None
    if cfg.adm_in_channels:
        pooled = torch.randn(2, cfg.adm_in_channels - 6 * 256, generator=gen)
        time_ids = torch.tensor([[1024.0, 768.0, 0.0, 32.0, 1024.0, 1024.0], [512.0, 640.0, 16.0, 0.0, 768.0, 512.0]])
        y = torch.cat([pooled, sdxl_size_embedding(time_ids)], dim=1)
        added = {"text_embeds": pooled, "time_ids": time_ids}
    with torch.no_grad():
        got = ours(x, t, context, y)
        want = twin(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample
    diff = (got - want).abs().max().item()
    print(f"\n{cfg.model_channels}-ch U-Net vs diffusers: max |diff| {diff:.2e}, output std {want.std().item():.3f}")
    assert want.std().item() > 0.05  # the comparison is meaningful only if the output is not near zero
    assert diff <= TOLERANCE


def test_timestep_embedding_matches_diffusers(diffusers: ModuleType) -> None:
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0, 1, 250, 999])
    for dim in (320, 256, 7):
        want = get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        torch.testing.assert_close(timestep_embedding(t, dim), want, atol=1e-6, rtol=0)
    assert torch.equal(timestep_embedding(torch.tensor([0]), 4), torch.tensor([[1.0, 1.0, 0.0, 0.0]]))


def test_sdxl_size_embedding_is_six_concatenated_embeddings() -> None:
    ids = torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 768.0]])
    emb = sdxl_size_embedding(ids)
    assert emb.shape == (1, 6 * 256)
    assert torch.equal(emb[:, 5 * 256:], timestep_embedding(torch.tensor([768.0]), 256))


def _meta_state(cfg: UNetConfig) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return UNetModel(cfg).state_dict()


@pytest.mark.parametrize("cfg,tensors,params", [
    (SD1_UNET, 686, 859_520_964),
    (SD2_UNET, 686, 865_910_724),
    (SDXL_UNET, 1680, 2_567_463_684),
], ids=["sd1", "sd2", "sdxl"])
def test_released_sizes_have_released_counts(cfg: UNetConfig, tensors: int, params: int) -> None:
    state = _meta_state(cfg)
    total = sum(t.numel() for t in state.values())
    print(f"\nU-Net context {cfg.context_dim}: {len(state)} tensors, {total:,} parameters")
    assert (len(state), total) == (tensors, params)


def test_released_key_names_and_shapes() -> None:
    sd1, sd2, sdxl = _meta_state(SD1_UNET), _meta_state(SD2_UNET), _meta_state(SDXL_UNET)
    assert sd1["input_blocks.1.1.proj_in.weight"].shape == (320, 320, 1, 1)
    assert sd2["input_blocks.1.1.proj_in.weight"].shape == (320, 320)
    assert sd1["output_blocks.2.1.conv.weight"].shape == (1280, 1280, 3, 3)
    assert "output_blocks.2.2.conv.weight" not in sd1
    assert sdxl["output_blocks.2.2.conv.weight"].shape == (1280, 1280, 3, 3)
    assert sdxl["label_emb.0.0.weight"].shape == (1280, 2816)
    assert "label_emb.0.0.weight" not in sd1
    assert sd1["input_blocks.4.0.skip_connection.weight"].shape == (640, 320, 1, 1)
    assert "input_blocks.5.0.skip_connection.weight" not in sd1
    assert sd1["input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"].shape == (320, 768)
    assert "input_blocks.1.1.transformer_blocks.0.attn2.to_k.bias" not in sd1
    assert sd1["input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight"].shape == (2560, 320)
    assert sd1["input_blocks.3.0.op.weight"].shape == (320, 320, 3, 3)
    assert sd1["out.2.weight"].shape == (4, 320, 3, 3)
    assert sdxl["middle_block.1.transformer_blocks.9.attn2.to_v.weight"].shape == (1280, 2048)
    assert "input_blocks.1.1.norm.weight" not in sdxl  # SDXL level 0 has no attention


@pytest.mark.parametrize("cfg", [SD1_UNET, SD2_UNET, SDXL_UNET], ids=["sd1", "sd2", "sdxl"])
def test_released_layout_converts_to_exactly_the_diffusers_model(diffusers: ModuleType, cfg: UNetConfig) -> None:
    config = _diffusers_config(cfg)
    with torch.device("meta"):
        reference = diffusers.UNet2DConditionModel(**config).state_dict()
    converted = _to_diffusers_layout(_meta_state(cfg), config)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in reference.items()}


def test_gradient_checkpointing_gives_same_output_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = _randomize(UNetModel(TINY_SD1_UNET).train(), seed=3)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 8, 8, generator=gen)
    context = torch.randn(1, 5, 32, generator=gen)
    calls = []
    real_checkpoint = unet_module.checkpoint
    monkeypatch.setattr(unet_module, "checkpoint", lambda *a, **k: calls.append(1) or real_checkpoint(*a, **k))

    def run(flag: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        model.gradient_checkpointing = flag
        out = model(x, torch.tensor([500]), context)
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    out_off, grads_off = run(False)
    assert not calls
    out_on, grads_on = run(True)
    assert len(calls) == len(model.input_blocks) + 1 + len(model.output_blocks)
    assert torch.equal(out_on, out_off)
    for a, b in zip(grads_on, grads_off):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_half_precision_weights_keep_the_input_dtype() -> None:
    torch.manual_seed(0)
    model = _randomize(UNetModel(TINY_SD1_UNET).eval(), seed=5)
    x = torch.randn(1, 4, 8, 8)
    context = torch.randn(1, 3, 32)
    with torch.no_grad():
        want = model(x, torch.tensor([10]), context)
        got = model.to(torch.bfloat16)(x, torch.tensor([10]), context)
    assert got.dtype == torch.float32
    assert (got - want).abs().max().item() < 0.05 * want.abs().max().item()


def test_bad_inputs_are_named() -> None:
    torch.manual_seed(0)
    sd1 = UNetModel(TINY_SD1_UNET)
    x, ctx = torch.zeros(2, 4, 8, 8), torch.zeros(2, 3, 32)
    with pytest.raises(UNetInputError, match=r"latents must be \[batch, 4"):
        sd1(torch.zeros(2, 3, 8, 8), torch.tensor([1, 2]), ctx)
    with pytest.raises(UNetInputError, match="multiple of 8"):
        sd1(torch.zeros(2, 4, 12, 8), torch.tensor([1, 2]), ctx)
    with pytest.raises(UNetInputError, match=r"context must be \[batch, tokens, 32\]"):
        sd1(x, torch.tensor([1, 2]), torch.zeros(2, 3, 64))
    with pytest.raises(UNetInputError, match="expected 1 or 2 timesteps, got 3"):
        sd1(x, torch.tensor([1, 2, 3]), ctx)
    with pytest.raises(UNetInputError, match="no label embedding"):
        sd1(x, torch.tensor([1, 2]), ctx, torch.zeros(2, 16))
    with torch.device("meta"):
        sdxl = UNetModel(TINY_SDXL_UNET)
    with pytest.raises(UNetInputError, match=r"needs y of shape \[2, 1600\]"):
        sdxl(torch.zeros(2, 4, 8, 8), torch.tensor([1]), torch.zeros(2, 3, 128))


def test_bad_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="transformer_depth"):
        UNetConfig(transformer_depth=(1, 1))
    with pytest.raises(ValueError, match="divisible by norm_groups 32"):
        UNetConfig(model_channels=48)
    with pytest.raises(ValueError, match="does not split into 7 attention heads"):
        UNetConfig(num_heads=7)
