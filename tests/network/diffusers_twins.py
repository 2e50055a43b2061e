"""Configurations of diffusers / transformers models matching ours (test-only reference libraries)."""
from __future__ import annotations

from lib_train_tools.models.clip import TextEncoderConfig
from lib_train_tools.models.unet import UNetConfig


def diffusers_unet_config(cfg: UNetConfig) -> dict:
    """Keyword arguments for diffusers' UNet2DConditionModel with our U-Net's architecture."""
    depths = [max(d, 1) for d in cfg.transformer_depth]   # diffusers ignores the depth of attention-free levels
    config = dict(
        in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        down_block_types=["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in cfg.transformer_depth],
        up_block_types=["CrossAttnUpBlock2D" if d else "UpBlock2D" for d in reversed(cfg.transformer_depth)],
        block_out_channels=list(cfg.level_widths), layers_per_block=cfg.num_res_blocks,
        cross_attention_dim=cfg.context_dim, transformer_layers_per_block=depths,
        attention_head_dim=[cfg.heads_for(w) for w in cfg.level_widths],   # a head count in diffusers
        use_linear_projection=cfg.use_linear_proj, norm_num_groups=cfg.norm_groups,
    )
    if cfg.adm_in_channels:
        config.update(addition_embed_type="text_time", addition_time_embed_dim=256,
                      projection_class_embeddings_input_dim=cfg.adm_in_channels)
    return config


def clip_text_config(cfg: TextEncoderConfig):
    """transformers' CLIPTextConfig with our text encoder's sizes."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions, hidden_act=cfg.activation,
        projection_dim=cfg.projection_dim or cfg.hidden_size,
    )
