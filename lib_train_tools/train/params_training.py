"""Registry entries for the LoRA network, the optimizer and the step budget.

`OPTIMIZER_NAMES` and `LR_SCHEDULER_NAMES` are declared here, without importing torch, so the UI can
offer them; `optimizers.py` and `lr_schedules.py` implement exactly these names (a test checks it).
"""

from __future__ import annotations

from .params_spec import LIST_OF_STR, Param

OPTIMIZER_NAMES = ("AdamW", "AdamW8bit", "Lion", "Lion8bit", "SGDNesterov", "Prodigy", "Adafactor")
LR_SCHEDULER_NAMES = (
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
)

NETWORK_PARAMS = (
    Param("network_module", str, "networks.lora", group="network", choices=("networks.lora",),
          help="Kind of network; only kohya's LoRA/LoCon (networks.lora) is implemented."),
    Param("network_dim", int, 4, group="network", ui="slider", min=1, max=1024,
          help="LoRA rank of the linear layers: bigger learns more detail, makes bigger files."),
    Param("network_alpha", float, 1.0, group="network", ui="slider", min=0.0, max=1024.0,
          help="Scales the LoRA output by alpha/rank (0: alpha = rank, i.e. scale 1)."),
    Param("network_dropout", float, None, group="network", min=0.0, max=1.0,
          help="Dropout on the LoRA's rank neurons while training. Unset: none."),
    Param("conv_dim", int, None, group="network", ui="number", min=1, max=1024, network_arg="conv_dim",
          help="LoCon: also train the 3x3 convolutions with this rank. Unset: linear layers only."),
    Param("conv_alpha", float, None, group="network", ui="number", min=0.0, max=1024.0,
          network_arg="conv_alpha",
          help="Alpha of the 3x3 convolution LoRAs. Unset with conv_dim set: 1."),
    Param("rank_dropout", float, None, group="network", min=0.0, max=1.0, network_arg="rank_dropout",
          help="Probability of zeroing a whole rank channel per sample while training."),
    Param("module_dropout", float, None, group="network", min=0.0, max=1.0,
          network_arg="module_dropout",
          help="Probability of skipping a LoRA module entirely for a step while training."),
    Param("network_args", LIST_OF_STR, (), group="network",
          help="Further k=v options of the network module as sd-scripts passes them; conv_dim, "
               "conv_alpha, rank_dropout, module_dropout and dropout are read into their own options."),
    Param("network_weights", str, None, group="network", ui="text",
          help="Start from the weights of this existing LoRA file (continue training)."),
    Param("network_train_unet_only", bool, False, group="network", ui="checkbox",
          help="Train and save only the U-Net part (recommended for SDXL)."),
    Param("network_train_text_encoder_only", bool, False, group="network",
          help="Train and save only the text-encoder part."),
)

OPTIMIZER_PARAMS = (
    Param("optimizer_type", str, "AdamW", group="optimizer", ui="dropdown", choices=OPTIMIZER_NAMES,
          help="Optimizer (case-insensitive). The 8-bit ones need bitsandbytes, Prodigy needs "
               "prodigyopt, Adafactor needs torch 2.5 or newer."),
    Param("optimizer_args", LIST_OF_STR, (), group="optimizer", ui="text",
          help="Extra optimizer options as k=v strings, e.g. weight_decay=0.1 betas=0.9,0.99."),
    Param("learning_rate", float, 1e-4, group="optimizer", ui="number", min=0.0,
          help="Learning rate of every part without its own rate (sd-scripts' default is 2e-6, "
               "which is far too low for a LoRA)."),
    Param("unet_lr", float, None, group="optimizer", ui="number", min=0.0,
          help="Learning rate of the U-Net LoRA. Unset: learning_rate."),
    Param("text_encoder_lr", float, None, group="optimizer", ui="number", min=0.0,
          help="Learning rate of the text-encoder LoRA. Unset: learning_rate. 0: not trained."),
    Param("lr_scheduler", str, "constant", group="optimizer", ui="dropdown", choices=LR_SCHEDULER_NAMES,
          help="How the learning rate changes over the run."),
    Param("lr_warmup_steps", float, 0, group="optimizer", ui="number", min=0,
          help="Steps of linear warm-up from 0; a value below 1 is a fraction of the total steps."),
    Param("lr_scheduler_num_cycles", int, 1, group="optimizer", min=1, max=1000,
          help="Number of restarts for cosine_with_restarts."),
    Param("lr_scheduler_power", float, 1.0, group="optimizer", min=0.0, max=100.0,
          help="Exponent of the polynomial schedule (1: linear down to almost 0)."),
    Param("max_grad_norm", float, 1.0, group="optimizer", min=0.0,
          help="Clip the gradient norm to this value (0: no clipping)."),
)

TRAINING_PARAMS = (
    Param("train_batch_size", int, 1, group="training", ui="slider", min=1, max=64,
          help="Images per step."),
    Param("max_train_epochs", int, None, group="training", ui="number", min=1,
          help="Train this many epochs; overrides max_train_steps when set."),
    Param("max_train_steps", int, 1600, group="training", ui="number", min=1,
          help="Number of optimizer steps, unless max_train_epochs is set."),
    Param("gradient_accumulation_steps", int, 1, group="training", min=1, max=1024,
          help="Add up the gradients of this many batches before each optimizer step."),
    Param("seed", int, None, group="training", ui="number", min=0, max=2**32 - 1,
          help="Random seed for a reproducible run. Unset: a random seed, reported at start."),
)
