"""Registry entries for the base model and how it runs (group "model").

Names follow sd-scripts' argument names so that its TOML files load unchanged. Where our default
differs from sd-scripts', the help text says so.
"""

from __future__ import annotations

from .params_spec import Form, Param

MODEL_PARAMS = (
    Param("pretrained_model_name_or_path", str, None, group="model",
          managed=True, stand_in="base-model.safetensors", path=True,
          help="Base model: a .safetensors/.ckpt checkpoint file or a Diffusers folder. Required."),
    Param("v2", bool, None, group="model",
          help="The base model is Stable Diffusion 2.x. Unset: detected from the checkpoint."),
    Param("v_parameterization", bool, None, group="model",
          help="The base model predicts v instead of noise (SD2-768-v, v-pred SDXL finetunes). "
               "Unset: detected from the checkpoint."),
    Param("zero_terminal_snr", bool, None, group="model",
          help="Train on the noise schedule rescaled to zero terminal SNR (Lin et al. 2024), as v-prediction "
               "models such as NoobAI-XL v-pred expect. Unset: detected from the checkpoint's 'ztsnr' marker."),
    Param("clip_skip", int, None, group="model", ui="slider", min=1, max=12,
          form=Form("network", 80, "CLIP skip"), kohya_key="ss_clip_skip",
          help="Condition on the k-th last text-encoder layer (2 = penultimate). Unset: the last "
               "layer. Ignored for SDXL."),
    Param("max_token_length", int, None, group="model", choices=(75, 150, 225),
          kohya_key="ss_max_token_length",
          help="Caption length in tokens; 150 or 225 encode the caption in 2 or 3 windows of 75. "
               "Unset: 75."),
    Param("mixed_precision", str, "no", group="model", ui="dropdown", choices=("no", "fp16", "bf16"),
          form=Form("network", 70, "Mixed precision"), kohya_key="ss_mixed_precision",
          help="Run the frozen base model in this precision; the LoRA weights stay float32 unless "
               "full_fp16 / full_bf16 is set."),
    Param("full_fp16", bool, False, group="model", kohya_key="ss_full_fp16",
          help="Keep the LoRA weights, their gradients and the optimizer state in float16 too: less memory, "
               "less stable. Needs mixed_precision fp16 and a CUDA GPU; the loss is still scaled. Prefer an "
               "optimizer that keeps its own state in higher precision (AdamW8bit, Adafactor): plain AdamW's "
               "eps 1e-8 rounds to 0 in float16. The file is saved in save_precision."),
    Param("full_bf16", bool, False, group="model",
          help="Keep the LoRA weights, their gradients and the optimizer state in bfloat16 too: less memory, "
               "no loss scaling needed. Needs mixed_precision bf16; bfloat16's 8-bit mantissa drops small "
               "updates, so pair it with AdamW8bit or Adafactor. The file is saved in save_precision."),
    Param("fp8_base", bool, False, group="model", kohya_key="ss_fp8_base",
          help="Store the frozen U-Net and text-encoder weights as float8 (e4m3fn), one byte each, and cast "
               "them back to the mixed precision in every layer: about half the base model's memory, a "
               "little rounding of the base weights. Needs mixed_precision fp16 or bf16, a CUDA GPU and "
               "torch 2.1 or newer. The LoRA weights and the saved file are unaffected."),
    Param("fp8_base_unet", bool, False, group="model", kohya_key="ss_fp8_base_unet",
          help="Like fp8_base, for the U-Net only: the text encoders stay in the mixed precision."),
    Param("gradient_checkpointing", bool, False, group="model", ui="checkbox",
          form=Form("memory", 10, "Gradient checkpointing"), kohya_key="ss_gradient_checkpointing",
          help="Recompute activations in the backward pass: much less memory, about 30% slower."),
    Param("xformers", bool, False, group="model",
          help="sd-scripts option for the xformers attention kernel.",
          note="xformers is accepted for compatibility and ignored: attention uses torch's SDPA."),
    Param("sdpa", bool, False, group="model",
          help="sd-scripts option for torch's scaled-dot-product attention.",
          note="sdpa is accepted for compatibility and ignored: torch's SDPA is always used."),
    Param("device", str, None, group="model",
          help="Device to train on: cuda, cuda:N, mps or cpu. Unset: the first CUDA GPU, else CPU."),
)
