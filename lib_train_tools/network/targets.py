"""Which layers of the U-Net and text encoders get a LoRA, chosen by module path.

This reproduces the module set of kohya's ``networks.lora``: every Linear/Conv2d inside a spatial
transformer, and every attention and MLP projection of each text-encoder layer; with LoCon (a
``conv_dim``) also the ResBlock convolutions, time-embedding projections and 1x1 skip convolutions,
and the down/up-sampling convolutions. Stems, output convs, time/label embeddings and norms never
get one. Paths rather than class names decide, so renamed classes cannot change the set.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from lib_train_tools.models.unet import UNetModel

from .kohya_names import lora_name, unet_lora_name

_BLOCK = r"(?:input_blocks\.\d+\.\d+|middle_block\.\d+|output_blocks\.\d+\.\d+)"
_TRANSFORMER_CHILD = re.compile(
    rf"^{_BLOCK}\.(?:proj_in|proj_out"
    r"|transformer_blocks\.\d+\.(?:attn[12]\.(?:to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2))$"
)
_LOCON_CHILD = re.compile(
    rf"^{_BLOCK}\.(?:in_layers\.2|out_layers\.3|emb_layers\.1|skip_connection|op|conv)$"
)
_TEXT_CHILD = re.compile(r"^text_model\.encoder\.layers\.\d+\.(?:self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12])$")
_PROJECTIONS = (".proj_in", ".proj_out")


@dataclass(frozen=True)
class LoRATarget:
    """One layer that can carry a LoRA, with its kohya name."""

    name: str            # kohya module name, e.g. lora_unet_down_blocks_0_attentions_0_proj_in
    prefix: str          # lora_unet, lora_te, lora_te1 or lora_te2
    path: str            # path inside our model, e.g. input_blocks.1.1.proj_in
    module: nn.Module    # the nn.Linear or nn.Conv2d itself
    locon: bool          # only present when LoCon (conv_dim) is on
    # kohya trains SD1/SD2 from single files with 1x1-conv projections, so a Linear proj_in/proj_out
    # (SD2) is written with [r, in, 1, 1] / [out, r, 1, 1] weights.
    store_as_conv: bool = False

    @property
    def spatial_kernel(self) -> bool:
        """True for a kxk convolution (k > 1): its rank comes from conv_dim, not network_dim."""
        return isinstance(self.module, nn.Conv2d) and tuple(self.module.kernel_size) != (1, 1)


def _is_layer(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.Conv2d))


def unet_targets(unet: UNetModel, family: str, include_locon: bool) -> list[LoRATarget]:
    """The U-Net's LoRA layers in model order; ``include_locon`` adds the LoCon set."""
    targets = []
    for path, module in unet.named_modules():
        if not _is_layer(module):
            continue
        locon = bool(_LOCON_CHILD.match(path))
        if not (_TRANSFORMER_CHILD.match(path) or (include_locon and locon)):
            continue
        store_as_conv = family != "sdxl" and isinstance(module, nn.Linear) and path.endswith(_PROJECTIONS)
        name = unet_lora_name(path, family, unet.config)
        targets.append(LoRATarget(name, "lora_unet", path, module, locon, store_as_conv))
    return targets


def text_encoder_targets(text_encoder: nn.Module, prefix: str) -> list[LoRATarget]:
    """The attention and MLP projections of every layer of one CLIP text encoder."""
    return [
        LoRATarget(lora_name(prefix, path), prefix, path, module, locon=False)
        for path, module in text_encoder.named_modules()
        if _is_layer(module) and _TEXT_CHILD.match(path)
    ]
