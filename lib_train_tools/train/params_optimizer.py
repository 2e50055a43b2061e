"""Registry entries for the optimizer and the learning-rate schedule (group "optimizer").

`OPTIMIZER_NAMES` and `LR_SCHEDULER_NAMES` are declared here, without importing torch, so the UI can
offer them; `optimizers.py` and `lr_schedules.py` implement exactly these names (a test checks it).
"""

from __future__ import annotations

from typing import Any

from .params_spec import LIST_OF_STR, Form, Grid, Param

OPTIMIZER_NAMES = ("AdamW", "AdamW8bit", "Lion", "Lion8bit", "SGDNesterov", "Prodigy", "Adafactor")
LR_SCHEDULER_NAMES = (
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
)


def _one_text_encoder_rate(value: Any, warnings: list[str]) -> Any:
    """sd-scripts (SDXL) takes one rate per text encoder; this trainer uses one rate for all."""
    if isinstance(value, (list, tuple)) and value:
        if len(value) > 1:
            warnings.append(f"text_encoder_lr lists {len(value)} rates; one rate ({value[0]}) is used "
                            "for every text encoder")
        return value[0]
    return value


def _warmup_percent(value: Any, warnings: list[str]) -> Any:
    """sd-scripts also takes the warm-up as a percentage of the total steps ("5%")."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return float(value.strip()[:-1]) / 100.0
    return value


def _warmup_steps_whole(value: Any) -> Any:
    """Whole numbers are step counts; writing them as TOML integers keeps sd-scripts from reading "10.0"
    as a ratio."""
    return int(value) if float(value).is_integer() else value


OPTIMIZER_PARAMS = (
    Param("optimizer_type", str, "AdamW", group="optimizer", ui="dropdown", choices=OPTIMIZER_NAMES,
          form=Form("optimizer", 10, "Optimizer"), grid=Grid("op", 30), results_rank=60,
          help="Optimizer (case-insensitive). The 8-bit ones need bitsandbytes, Prodigy needs "
               "prodigyopt, Adafactor needs torch 2.5 or newer."),
    Param("optimizer_args", LIST_OF_STR, (), group="optimizer",
          help="Extra optimizer options as k=v strings, e.g. weight_decay=0.1 betas=0.9,0.99."),
    Param("learning_rate", float, 1e-4, group="optimizer", ui="number", min=0.0,
          form=Form("optimizer", 20, "Learning rate"), grid=Grid("lr", 40), results_rank=30,
          kohya_key="ss_learning_rate",
          help="Learning rate of every part without its own rate (sd-scripts' default is 2e-6, "
               "which is far too low for a LoRA)."),
    Param("unet_lr", float, None, group="optimizer", ui="number", min=0.0,
          form=Form("optimizer", 30, "U-Net learning rate"), grid=Grid("ulr", 50), results_rank=40,
          kohya_key="ss_unet_lr",
          help="Learning rate of the U-Net LoRA. Unset: learning_rate."),
    Param("text_encoder_lr", float, None, group="optimizer", ui="number", min=0.0,
          form=Form("optimizer", 40, "Text-encoder learning rate"), grid=Grid("tlr", 60), results_rank=50,
          kohya_key="ss_text_encoder_lr",
          normalise=_one_text_encoder_rate,
          help="Learning rate of the text-encoder LoRA. Unset: learning_rate. 0: not trained."),
    Param("lr_scheduler", str, "constant", group="optimizer", ui="dropdown", choices=LR_SCHEDULER_NAMES,
          form=Form("optimizer", 50, "Learning-rate schedule"), results_rank=70, kohya_key="ss_lr_scheduler",
          help="How the learning rate changes over the run."),
    Param("lr_warmup_steps", float, 0, group="optimizer", ui="number", min=0,
          form=Form("optimizer", 60, "Warm-up steps"), kohya_key="ss_lr_warmup_steps",
          normalise=_warmup_percent, canonical=_warmup_steps_whole,
          help="Steps of linear warm-up from 0; a value below 1 is a fraction of the total steps."),
    Param("lr_scheduler_num_cycles", int, 1, group="optimizer", ui="number", min=1, max=1000,
          form=Form("optimizer", 70, "Restart cycles"),
          help="Number of restarts for cosine_with_restarts."),
    Param("lr_scheduler_power", float, 1.0, group="optimizer", min=0.0, max=100.0,
          help="Exponent of the polynomial schedule (1: linear down to almost 0)."),
    Param("max_grad_norm", float, 1.0, group="optimizer", min=0.0, kohya_key="ss_max_grad_norm",
          help="Clip the gradient norm to this value (0: no clipping)."),
)
