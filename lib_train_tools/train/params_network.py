"""Registry entries for the LoRA network: ranks, alphas, LoCon convolutions, dropout (group "network")."""

from __future__ import annotations

from .params_spec import LIST_OF_STR, Form, Grid, Param

NETWORK_PARAMS = (
    Param("network_module", str, "networks.lora", group="network", choices=("networks.lora",),
          help="Kind of network; only kohya's LoRA/LoCon (networks.lora) is implemented."),
    Param("network_dim", int, 4, group="network", ui="slider", min=1, max=1024,
          form=Form("network", 30), grid=Grid("net", 70), results_rank=10,
          help="LoRA rank of the linear layers: bigger learns more detail, makes bigger files."),
    Param("network_alpha", float, 1.0, group="network", ui="slider", min=0.0, max=1024.0,
          form=Form("network", 40), grid=Grid("ap", 80), results_rank=20,
          help="Scales the LoRA output by alpha/rank (0: alpha = rank, i.e. scale 1)."),
    Param("network_dropout", float, None, group="network", min=0.0, max=1.0, kohya_key="ss_network_dropout",
          help="Dropout on the LoRA's rank neurons while training. Unset: none."),
    Param("conv_dim", int, None, group="network", ui="number", min=1, max=1024, network_arg="conv_dim",
          form=Form("network", 50),
          help="LoCon: also train the 3x3 convolutions with this rank. Unset: linear layers only."),
    Param("conv_alpha", float, None, group="network", ui="number", min=0.0, max=1024.0,
          network_arg="conv_alpha", form=Form("network", 60),
          help="Alpha of the 3x3 convolution LoRAs. Unset with conv_dim set: 1."),
    Param("rank_dropout", float, None, group="network", min=0.0, max=1.0, network_arg="rank_dropout",
          help="Probability of zeroing a whole rank channel per sample while training."),
    Param("module_dropout", float, None, group="network", min=0.0, max=1.0,
          network_arg="module_dropout",
          help="Probability of skipping a LoRA module entirely for a step while training."),
    Param("network_args", LIST_OF_STR, (), group="network",
          help="Further k=v options of the network module as sd-scripts passes them; conv_dim, "
               "conv_alpha, rank_dropout, module_dropout and dropout are read into their own options."),
    Param("network_weights", str, None, group="network", path=True,
          help="Start from the weights of this existing LoRA file (continue training)."),
    Param("network_train_unet_only", bool, False, group="network",
          help="Train and save only the U-Net part (recommended for SDXL)."),
    Param("network_train_text_encoder_only", bool, False, group="network",
          help="Train and save only the text-encoder part."),
)
