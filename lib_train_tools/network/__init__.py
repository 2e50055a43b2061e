"""LoRA / LoCon networks for the Stable Diffusion U-Net and text encoders, in kohya's file format.

``create_network`` / ``create_network_from_weights`` build a ``LoRANetwork``; ``save_lora`` writes
it as a kohya ``.safetensors`` file that A1111, ComfyUI, diffusers and kohya's tools load.
"""
from .kohya_names import KohyaNameError, ldm_to_diffusers_path, lora_name, text_encoder_prefixes, unet_lora_name
from .lora_file import LoRADims, LoRAFileError, ModuleWeights, group_modules, lora_dims, read_lora, save_lora
from .lora_module import LoRAModule
from .network import (
    LoadResult, LoRANetwork, NetworkConfig, NetworkError, create_network, create_network_from_weights,
)
from .targets import LoRATarget, text_encoder_targets, unet_targets

__all__ = [
    "KohyaNameError", "LoRADims", "LoRAFileError", "LoRAModule", "LoRANetwork", "LoRATarget", "LoadResult",
    "ModuleWeights", "NetworkConfig", "NetworkError", "create_network", "create_network_from_weights",
    "group_modules", "ldm_to_diffusers_path", "lora_dims", "lora_name", "read_lora", "save_lora",
    "text_encoder_prefixes", "text_encoder_targets", "unet_lora_name", "unet_targets",
]
