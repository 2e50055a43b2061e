"""The one table from our module paths to kohya LoRA module names.

A kohya name is ``<prefix>_<module path>`` with every ``.`` turned into ``_``. Prefixes are
``lora_unet`` and ``lora_te`` (SD1/SD2, one text encoder) or ``lora_te1``/``lora_te2`` (SDXL).
The module path is the one kohya's own models have: for SD1/SD2 U-Nets that is the diffusers path
(``down_blocks.0.attentions.0...``), for SDXL the SGM path, which is what our U-Net uses anyway;
text encoders use Hugging Face CLIP paths, which ours use too. The writer, the loader and the tests
all name modules through this file.
"""
from __future__ import annotations

from lib_train_tools.models.unet import UNetConfig

FAMILIES = ("sd1", "sd2", "sdxl")
UNET_PREFIX = "lora_unet"

# LDM ResBlock children -> diffusers ResnetBlock2D children.
_RESBLOCK_CHILDREN = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "emb_layers.1": "time_emb_proj",
    "skip_connection": "conv_shortcut",
}
# Modules outside the numbered blocks (kohya never puts a LoRA on them; mapped for completeness).
_TOP_LEVEL = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "label_emb.0.0": "add_embedding.linear_1",
    "label_emb.0.2": "add_embedding.linear_2",
    "input_blocks.0.0": "conv_in",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}


class KohyaNameError(ValueError):
    """A module path or family has no kohya name."""


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise KohyaNameError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    return family


def lora_name(prefix: str, module_path: str) -> str:
    """``lora_unet`` + ``a.b.c`` -> ``lora_unet_a_b_c``."""
    return f"{prefix}.{module_path}".replace(".", "_")


def text_encoder_prefixes(family: str) -> tuple[str, ...]:
    """Name prefixes of the text encoders, in the order the model passes them."""
    return ("lora_te1", "lora_te2") if check_family(family) == "sdxl" else ("lora_te",)


def unet_lora_name(ldm_path: str, family: str, config: UNetConfig) -> str:
    """kohya's name for the U-Net module at our (LDM/SGM) path ``ldm_path``."""
    if check_family(family) == "sdxl":
        return lora_name(UNET_PREFIX, ldm_path)
    return lora_name(UNET_PREFIX, ldm_to_diffusers_path(ldm_path, config))


def ldm_to_diffusers_path(ldm_path: str, config: UNetConfig) -> str:
    """Translate an LDM U-Net module path to the diffusers ``UNet2DConditionModel`` path."""
    for ldm, diffusers in _TOP_LEVEL.items():
        if ldm_path == ldm or ldm_path.startswith(ldm + "."):
            return diffusers + ldm_path[len(ldm):]
    parts = ldm_path.split(".")
    numbers = _indices(parts, ldm_path)
    try:
        if parts[0] == "input_blocks":
            block, kind = _input_block(numbers[0], numbers[1], config)
        elif parts[0] == "middle_block":
            block, kind = _middle_block(numbers[0], config)
        else:
            block, kind = _output_block(numbers[0], numbers[1], config)
    except KohyaNameError as exc:
        raise KohyaNameError(f"U-Net path {ldm_path!r}: {exc}") from None
    return _join(block, _inner_path(kind, ".".join(parts[1 + len(numbers):]), ldm_path))


def _indices(parts: list[str], ldm_path: str) -> list[int]:
    """The block (and sub-module) numbers after ``input_blocks``/``middle_block``/``output_blocks``."""
    count = {"input_blocks": 2, "middle_block": 1, "output_blocks": 2}.get(parts[0])
    if count is None:
        raise KohyaNameError(f"U-Net path {ldm_path!r} is not inside a numbered block")
    numbers = parts[1:1 + count]
    if len(numbers) != count or not all(n.isdigit() for n in numbers):
        raise KohyaNameError(f"U-Net path {ldm_path!r} is not an LDM block path")
    return [int(n) for n in numbers]


def _input_block(index: int, sub: int, config: UNetConfig) -> tuple[str, str]:
    per_level = config.num_res_blocks + 1   # the res blocks, then the downsampler
    level, slot = divmod(index - 1, per_level)
    levels = len(config.channel_mult)
    if index < 1 or level >= levels or (slot == config.num_res_blocks and level == levels - 1):
        raise KohyaNameError(f"no input block {index} in a U-Net with {levels} levels")
    if slot == config.num_res_blocks:
        return _only(sub, 0, f"down_blocks.{level}.downsamplers.0", "down")
    if sub == 0:
        return f"down_blocks.{level}.resnets.{slot}", "res"
    return _only(sub, 1 if config.transformer_depth[level] else -1, f"down_blocks.{level}.attentions.{slot}", "attn")


def _middle_block(sub: int, config: UNetConfig) -> tuple[str, str]:
    if config.transformer_depth_middle and sub == 1:
        return "mid_block.attentions.0", "attn"
    last = 2 if config.transformer_depth_middle else 1
    if sub not in (0, last):
        raise KohyaNameError(f"no module {sub} in the middle block")
    return f"mid_block.resnets.{0 if sub == 0 else 1}", "res"


def _output_block(index: int, sub: int, config: UNetConfig) -> tuple[str, str]:
    per_level = config.num_res_blocks + 1
    up_level, slot = divmod(index, per_level)
    levels = len(config.channel_mult)
    if up_level >= levels:
        raise KohyaNameError(f"no output block {index} in a U-Net with {levels} levels")
    has_attention = config.transformer_depth[levels - 1 - up_level] > 0
    if sub == 0:
        return f"up_blocks.{up_level}.resnets.{slot}", "res"
    if sub == 1 and has_attention:
        return f"up_blocks.{up_level}.attentions.{slot}", "attn"
    upsampler_sub = 2 if has_attention else 1
    has_upsampler = slot == config.num_res_blocks and up_level < levels - 1
    return _only(sub, upsampler_sub if has_upsampler else -1, f"up_blocks.{up_level}.upsamplers.0", "up")


def _only(sub: int, expected: int, block: str, kind: str) -> tuple[str, str]:
    if sub != expected:
        raise KohyaNameError(f"no module {sub} at {block}")
    return block, kind


def _inner_path(kind: str, rest: str, ldm_path: str) -> str:
    """Rename the part of the path inside a block (ResBlock children and sampler convs differ)."""
    if kind == "attn" or not rest:
        return rest
    if kind == "res":
        for ldm, diffusers in _RESBLOCK_CHILDREN.items():
            if rest == ldm or rest.startswith(ldm + "."):
                return diffusers + rest[len(ldm):]
    if (kind, rest.split(".")[0]) in (("down", "op"), ("up", "conv")):
        return "conv" + rest[len(rest.split(".")[0]):]
    raise KohyaNameError(f"U-Net path {ldm_path!r}: {rest!r} has no diffusers name")


def _join(block: str, inner: str) -> str:
    return f"{block}.{inner}" if inner else block
