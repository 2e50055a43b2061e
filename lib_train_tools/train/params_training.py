"""Registry entries for the step budget: batch size, epochs or steps, accumulation, seed (group "training")."""

from __future__ import annotations

from .params_spec import Form, Grid, Param

TRAINING_PARAMS = (
    Param("train_batch_size", int, 1, group="training", ui="slider", min=1, max=64,
          form=Form("dataset", 60), grid=Grid("bs", 10), results_rank=100, kohya_key="ss_batch_size_per_device",
          help="Images per step."),
    Param("max_train_epochs", int, None, group="training", ui="number", min=1,
          form=Form("dataset", 70), grid=Grid("ep", 20), results_rank=80,
          help="Train this many epochs; overrides max_train_steps when set."),
    Param("max_train_steps", int, 1600, group="training", min=1, results_rank=90,
          help="Number of optimizer steps, unless max_train_epochs is set."),
    Param("gradient_accumulation_steps", int, 1, group="training", min=1, max=1024,
          kohya_key="ss_gradient_accumulation_steps",
          help="Add up the gradients of this many batches before each optimizer step."),
    Param("seed", int, None, group="training", ui="number", min=0, max=2**32 - 1,
          form=Form("memory", 50), results_rank=120,
          help="Random seed for a reproducible run. Unset: a random seed, reported at start."),
)
