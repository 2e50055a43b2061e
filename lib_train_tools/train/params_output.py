"""Registry entries for saving, sample images and the advanced noise/loss options.

Also the options accepted only for sd-scripts compatibility (logging) and our own `progress_file`.
"""

from __future__ import annotations

from .params_spec import Param

SAMPLE_SAMPLERS = (
    "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
    "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
)

SAVING_PARAMS = (
    Param("output_dir", str, None, group="saving", ui="text",
          help="Folder the LoRA files (and samples, states) are written to. Required."),
    Param("output_name", str, None, group="saving", ui="text",
          help="File name of the LoRA without extension. Unset: \"last\"."),
    Param("save_model_as", str, "safetensors", group="saving", choices=("safetensors", "ckpt", "pt"),
          help="File format; only safetensors carries the training metadata.",
          note="save_model_as ckpt/pt is not supported: LoRA files are written as .safetensors."),
    Param("save_precision", str, None, group="saving", ui="dropdown", choices=("float", "fp16", "bf16"),
          help="Precision of the saved weights. Unset: as trained (float32)."),
    Param("save_every_n_epochs", int, None, group="saving", ui="number", min=1,
          help="Also save a LoRA every n epochs."),
    Param("save_every_n_steps", int, None, group="saving", ui="number", min=1,
          help="Also save a LoRA every n steps."),
    Param("save_state", bool, False, group="saving",
          help="With every save, also save the optimizer and scheduler state to resume from."),
    Param("resume", str, None, group="saving",
          help="Continue a run from a state folder written by save_state."),
    Param("training_comment", str, None, group="saving", ui="text",
          help="Free text stored in the LoRA's metadata."),
)

SAMPLING_PARAMS = (
    Param("sample_prompts", str, None, group="sampling", ui="text",
          help="File of prompts (.txt, .toml or .json) rendered while training."),
    Param("sample_every_n_epochs", int, None, group="sampling", ui="number", min=1,
          help="Render the sample prompts every n epochs (takes precedence over steps)."),
    Param("sample_every_n_steps", int, None, group="sampling", ui="number", min=1,
          help="Render the sample prompts every n steps."),
    Param("sample_sampler", str, "ddim", group="sampling", ui="dropdown", choices=SAMPLE_SAMPLERS,
          help="Sampler used for the sample images."),
)

ADVANCED_PARAMS = (
    Param("noise_offset", float, None, group="advanced", min=0.0, max=1.0,
          help="Add this much per-channel constant noise so the LoRA can learn very dark or bright "
               "images (about 0.05-0.1)."),
    Param("multires_noise_iterations", int, None, group="advanced", min=1, max=64,
          help="Pyramid noise: number of scales added to the noise (6-10 are typical)."),
    Param("multires_noise_discount", float, 0.3, group="advanced", min=0.0, max=1.0,
          help="Pyramid noise: weight factor per scale."),
    Param("min_snr_gamma", float, None, group="advanced", min=0.0, max=100.0,
          help="Min-SNR loss weighting with this gamma (5 is the paper's value). Unset: off."),
    Param("min_timestep", int, None, group="advanced", min=0, max=1000,
          help="Lowest timestep sampled in training. Unset: 0."),
    Param("max_timestep", int, None, group="advanced", min=0, max=1000,
          help="Timesteps are sampled below this value. Unset: 1000."),
    Param("log_with", str, None, group="advanced", choices=("tensorboard", "wandb", "all"),
          help="sd-scripts logging backend.",
          note="log_with is accepted for compatibility and ignored: progress goes to the progress file."),
    Param("logging_dir", str, None, group="advanced",
          help="sd-scripts logging folder.",
          note="logging_dir is accepted for compatibility and ignored: progress goes to the progress file."),
    Param("progress_file", str, None, group="advanced",
          help="Where the JSON-lines progress events go. Unset: standard output."),
)
