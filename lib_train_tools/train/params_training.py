"""Registry entries for the step budget (batch size, epochs or steps, accumulation, seed) and the
validation loss on held-out images (sd-scripts' 2025 names), all in group "training"."""

from __future__ import annotations

from .params_spec import Form, Grid, Param

TRAINING_PARAMS = (
    Param("train_batch_size", int, 1, group="training", ui="slider", min=1, max=64,
          form=Form("dataset", 60, "Batch size"), grid=Grid("bs", 10), results_rank=100,
          kohya_key="ss_batch_size_per_device",
          help="Images per step."),
    Param("max_train_epochs", int, None, group="training", ui="number", min=1,
          form=Form("dataset", 70, "Epochs"), grid=Grid("ep", 20), results_rank=80,
          help="Train this many epochs; overrides max_train_steps when set."),
    Param("max_train_steps", int, 1600, group="training", min=1, results_rank=90,
          help="Number of optimizer steps, unless max_train_epochs is set."),
    Param("gradient_accumulation_steps", int, 1, group="training", min=1, max=1024,
          kohya_key="ss_gradient_accumulation_steps",
          help="Add up the gradients of this many batches before each optimizer step."),
    Param("seed", int, None, group="training", ui="number", min=0, max=2**32 - 1,
          form=Form("memory", 50, "Seed"), results_rank=120,
          help="Random seed for a reproducible run. Unset: a random seed, reported at start."),
    Param("validation_split", float, 0.0, group="training", min=0.0, max=1.0, kohya_key="ss_validation_split",
          help="Share of the training images held out (never trained on) to measure a validation loss; "
               "regularisation images are never held out, and every folder keeps at least one image. 0: off."),
    Param("validation_seed", int, None, group="training", min=0, max=2**32 - 1, kohya_key="ss_validation_seed",
          help="Seed of the held-out choice and of the fixed noise and timesteps each held-out image is "
               "measured with. Unset: the run's seed."),
    Param("validate_every_n_epochs", int, None, group="training", min=1, kohya_key="ss_validate_every_n_epochs",
          help="Measure the validation loss after every n-th epoch. Unset: after every epoch."),
    Param("validate_every_n_steps", int, None, group="training", min=1, kohya_key="ss_validate_every_n_steps",
          help="Also measure the validation loss every n optimizer steps."),
    Param("max_validation_steps", int, None, group="training", min=1, kohya_key="ss_max_validation_steps",
          help="Measure at most this many held-out images each time. Unset: all of them."),
)
