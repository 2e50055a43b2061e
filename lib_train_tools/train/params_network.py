"""Registry entries for the LoRA network: ranks, alphas, LoCon convolutions, dropout (group "network")."""

from __future__ import annotations

from .params_spec import LIST_OF_STR, Form, Grid, Param

# Facts of sd-scripts' block numbering (lib_train_tools/network/blocks.py), repeated here for the help texts
# only: importing that module would load torch, and reading the registry must not.
_BLOCK_COUNTS = "25 values for SD1/SD2 (IN00-IN11, MID, OUT00-OUT11), 23 for SDXL"
_LR_WEIGHTS = "SD1/SD2 12 values, SDXL 9"
_PRESETS = "sine, cosine, linear, reverse_linear, zeros (optionally +base, e.g. sine+0.5)"


def _no_spaces(value: str) -> str:
    """"4, 4, 8" -> "4,4,8": the list as sd-scripts' network_args text, without the spaces."""
    return "".join(value.split())


NETWORK_PARAMS = (
    Param("network_module", str, "networks.lora", group="network", choices=("networks.lora", "lycoris.kohya"),
          help="Kind of network: kohya's LoRA/LoCon (networks.lora), or LyCORIS (lycoris.kohya), whose "
               "algo picks LoRA/LoCon, LoHa or LoKr."),
    # LyCORIS' network_args (lycoris.kohya); A1111 1.10's and Forge's Lora loaders read the files they make.
    Param("algo", str, None, group="network", choices=("lora", "locon", "loha", "lokr"), network_arg="algo",
          help="lycoris.kohya: lora/locon (LoRA, LoCon with conv_dim), loha (Hadamard product of two "
               "low-rank pairs) or lokr (Kronecker product). Unset: lora."),
    Param("dora_wd", bool, None, group="network", network_arg="dora_wd",
          help="lycoris.kohya: DoRA, weight-decomposed training (a learned magnitude per input channel, "
               "dora_scale, as A1111 and Forge apply it). Unset: off."),
    Param("factor", int, None, group="network", min=-1, network_arg="factor",
          help="lycoris.kohya, algo=lokr: split each layer size by this factor (-1: as square as possible). "
               "Unset: -1."),
    Param("full_matrix", bool, None, group="network", network_arg="full_matrix",
          help="lycoris.kohya, algo=lokr: store the larger Kronecker half whole instead of as a rank-dim "
               "product (it is stored whole anyway when dim is at least half its size). Unset: off."),
    Param("decompose_both", bool, None, group="network", network_arg="decompose_both",
          help="lycoris.kohya, algo=lokr: also store the smaller Kronecker half as a low-rank product. Unset: off."),
    Param("network_dim", int, 4, group="network", ui="slider", min=1, max=1024,
          form=Form("network", 30, "Network rank"), grid=Grid("net", 70), results_rank=10,
          help="LoRA rank of the linear layers: bigger learns more detail, makes bigger files."),
    Param("network_alpha", float, 1.0, group="network", ui="slider", min=0.0, max=1024.0,
          form=Form("network", 40, "Network alpha"), grid=Grid("ap", 80), results_rank=20,
          help="Scales the LoRA output by alpha/rank (0: alpha = rank, i.e. scale 1)."),
    Param("network_dropout", float, None, group="network", min=0.0, max=1.0, kohya_key="ss_network_dropout",
          help="Dropout on the LoRA's rank neurons while training. Unset: none."),
    Param("conv_dim", int, None, group="network", ui="number", min=1, max=1024, network_arg="conv_dim",
          form=Form("network", 50, "Convolution rank (LoCon)"),
          help="LoCon: also train the 3x3 convolutions with this rank. Unset: linear layers only."),
    Param("conv_alpha", float, None, group="network", ui="number", min=0.0, max=1024.0,
          network_arg="conv_alpha", form=Form("network", 60, "Convolution alpha (LoCon)"),
          help="Alpha of the 3x3 convolution LoRAs. Unset with conv_dim set: 1."),
    Param("rank_dropout", float, None, group="network", min=0.0, max=1.0, network_arg="rank_dropout",
          help="Probability of zeroing a whole rank channel per sample while training."),
    Param("module_dropout", float, None, group="network", min=0.0, max=1.0,
          network_arg="module_dropout",
          help="Probability of skipping a LoRA module entirely for a step while training."),
    Param("network_args", LIST_OF_STR, (), group="network",
          help="Further k=v options of the network module as sd-scripts passes them; those this trainer "
               "has (conv_dim, dropout, block_dims, loraplus_lr_ratio, ...) are read into their own options."),
    Param("network_weights", str, None, group="network", path=True,
          help="Start from the weights of this existing LoRA file (continue training)."),
    Param("network_train_unet_only", bool, False, group="network",
          help="Train and save only the U-Net part (recommended for SDXL)."),
    Param("network_train_text_encoder_only", bool, False, group="network",
          help="Train and save only the text-encoder part."),
    *(Param(name, float, None, group="network", min=0.0, network_arg=name, help=text) for name, text in (
        ("loraplus_lr_ratio", "LoRA+: the lora_up (B) weights learn this many times faster than lora_down "
                              "(Hayou et al. 2024; about 16). Unset or 0: off."),
        ("loraplus_unet_lr_ratio", "LoRA+ ratio of the U-Net; unset: loraplus_lr_ratio."),
        ("loraplus_text_encoder_lr_ratio", "LoRA+ ratio of the text encoders; unset: loraplus_lr_ratio."))),
    *(Param(name, str, None, group="network", network_arg=name, canonical=_no_spaces, help=text) for name, text in (
        ("block_dims", f"Rank per U-Net block, comma-separated: {_BLOCK_COUNTS}. 0: no LoRA in that block."),
        ("block_alphas", f"Alpha per U-Net block ({_BLOCK_COUNTS}); unset: network_alpha everywhere."),
        ("conv_block_dims", f"Rank of the 3x3 convolutions per U-Net block ({_BLOCK_COUNTS}); turns LoCon "
                            "on for the blocks whose rank is above 0."),
        ("conv_block_alphas", f"Alpha of the 3x3 convolutions per U-Net block ({_BLOCK_COUNTS}); unset: conv_alpha."),
        ("down_lr_weight", f"Learning-rate weight per input block ({_LR_WEIGHTS} down), or a preset: "
                           f"{_PRESETS}. 0: the block is not trained."),
        ("mid_lr_weight", "Learning-rate weight of the middle block (SD1/SD2 1 value, SDXL 3)."),
        ("up_lr_weight", f"Learning-rate weight per output block ({_LR_WEIGHTS} up), or a preset: {_PRESETS}."))),
    Param("block_lr_zero_threshold", float, None, group="network", network_arg="block_lr_zero_threshold",
          help="Block lr weights not above this become 0 (the block is not trained). Unset: 0."),
)
