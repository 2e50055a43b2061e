"""CLIP text encoders of Stable Diffusion: CLIP-L (SD1, SDXL TE1), OpenCLIP-H (SD2), OpenCLIP-bigG (SDXL TE2).

One module class covers all three; they differ only in ``TextEncoderConfig`` (sizes, activation and
whether a ``text_projection`` exists). Submodule names follow the Hugging Face CLIP layout
(``text_model.encoder.layers.N.self_attn.q_proj`` ...), because kohya-format LoRA keys for text
encoders are built from exactly these paths and SD1/SDXL checkpoints store TE1 under them.
OpenCLIP checkpoints are renamed into this layout by ``clip_layout``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..torch_compat import checkpoint

ACTIVATIONS = ("quick_gelu", "gelu")


@dataclass(frozen=True)
class TextEncoderConfig:
    """Shape of one CLIP text encoder; the presets below are the ones Stable Diffusion uses."""

    vocab_size: int = 49408
    max_positions: int = 77
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    activation: str = "quick_gelu"     # "quick_gelu" (CLIP-L) or "gelu" (OpenCLIP)
    projection_dim: int = 0            # > 0: has `text_projection` (SDXL's second encoder, 1280)
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"TextEncoderConfig.activation={self.activation!r}: expected one of {ACTIVATIONS}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"TextEncoderConfig: hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        for name in ("vocab_size", "max_positions", "hidden_size", "num_layers", "num_heads", "intermediate_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TextEncoderConfig.{name}={getattr(self, name)}: must be positive")
        if self.projection_dim < 0:
            raise ValueError(f"TextEncoderConfig.projection_dim={self.projection_dim}: must be 0 (none) or positive")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


CLIP_L = TextEncoderConfig()
# The SD2 file holds 24 blocks, but SD2 conditions on the penultimate one, so the last is never loaded.
OPENCLIP_H_SD2 = TextEncoderConfig(
    hidden_size=1024, num_layers=23, num_heads=16, intermediate_size=4096, activation="gelu"
)
OPENCLIP_BIGG = TextEncoderConfig(
    hidden_size=1280, num_layers=32, num_heads=20, intermediate_size=5120, activation="gelu", projection_dim=1280
)
# Tiny presets keep the real vocabulary and layer counts so token ids and key layouts stay real;
# widths match the tiny U-Nets' context (SD1 32, SD2 64, SDXL 32 + 96 = 128, pooled 64).
# Tiny presets follow the released rule of 64-wide heads (at least one), so detection infers them.
TINY_CLIP_L = TextEncoderConfig(hidden_size=32, num_heads=1, intermediate_size=64)
TINY_OPENCLIP_H = TextEncoderConfig(
    hidden_size=64, num_layers=23, num_heads=1, intermediate_size=128, activation="gelu"
)
TINY_OPENCLIP_BIGG = TextEncoderConfig(
    hidden_size=96, num_layers=32, num_heads=1, intermediate_size=128, activation="gelu", projection_dim=64
)


@dataclass
class TextEncoderOutput:
    """What one text-encoder pass yields.

    ``hidden_states`` has ``num_layers + 1`` entries: the embeddings, then each layer's output
    (no final norm). ``pooled`` is ``last_hidden_state`` at the EOS position, projected when the
    encoder has a ``text_projection``.
    """

    hidden_states: tuple[torch.Tensor, ...]
    last_hidden_state: torch.Tensor
    pooled: torch.Tensor


class CLIPEmbeddings(nn.Module):
    """Token embedding plus learned absolute position embedding."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_positions, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_embedding.weight[: input_ids.shape[-1]]
        return self.token_embedding(input_ids) + positions


class CLIPAttention(nn.Module):
    """Causal multi-head self-attention with separate q/k/v projections (the HF layout)."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        width = config.hidden_size
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = split_heads(self.q_proj(x)), split_heads(self.k_proj(x)), split_heads(self.v_proj(x))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(batch, seq, width))


class CLIPMLP(nn.Module):
    """Two-layer feed-forward block; CLIP-L uses quick_gelu, OpenCLIP the exact (erf) GELU."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.activation = config.activation
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if self.activation == "quick_gelu":
            h = h * torch.sigmoid(1.702 * h)
        else:
            h = F.gelu(h)
        return self.fc2(h)


class CLIPEncoderLayer(nn.Module):
    """Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.self_attn = CLIPAttention(config)
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    """The stack of transformer blocks; returns every intermediate state, not just the last."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(config.num_layers))

    def forward(self, hidden: torch.Tensor, use_checkpointing: bool = False) -> tuple[torch.Tensor, ...]:
        states = [hidden]
        for layer in self.layers:
            if use_checkpointing:
                hidden = checkpoint(layer, hidden)
            else:
                hidden = layer(hidden)
            states.append(hidden)
        return tuple(states)


class CLIPTextTransformer(nn.Module):
    """Container that gives parameters their ``text_model.`` path."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.embeddings = CLIPEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class CLIPTextModel(nn.Module):
    """A CLIP text encoder; ``forward(input_ids[batch, seq])`` returns a ``TextEncoderOutput``.

    Set ``gradient_checkpointing = True`` to recompute each layer in the backward pass when the
    encoder itself is trained (text-encoder LoRA); it has no effect under ``torch.no_grad``.
    """

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        self.text_model = CLIPTextTransformer(config)
        self.text_projection = (
            nn.Linear(config.hidden_size, config.projection_dim, bias=False) if config.projection_dim > 0 else None
        )

    def forward(self, input_ids: torch.Tensor) -> TextEncoderOutput:
        if input_ids.dim() != 2:
            raise ValueError(f"CLIPTextModel expects input_ids of shape [batch, seq], got {tuple(input_ids.shape)}")
        if input_ids.shape[1] > self.config.max_positions:
            raise ValueError(
                f"CLIPTextModel: sequence of {input_ids.shape[1]} tokens is longer than the "
                f"{self.config.max_positions} positions the encoder has; split prompts into windows"
            )
        embedded = self.text_model.embeddings(input_ids)
        use_checkpointing = self.gradient_checkpointing and torch.is_grad_enabled()
        states = self.text_model.encoder(embedded, use_checkpointing)
        last = self.text_model.final_layer_norm(states[-1])
        # EOS (49407) is the largest id in the CLIP vocabulary, so argmax finds its first occurrence.
        eos_positions = input_ids.argmax(dim=-1)
        pooled = last[torch.arange(last.shape[0], device=last.device), eos_positions.to(last.device)]
        if self.text_projection is not None:
            pooled = self.text_projection(pooled)
        return TextEncoderOutput(hidden_states=states, last_hidden_state=last, pooled=pooled)
