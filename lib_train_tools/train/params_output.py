"""Registry entries for what a run writes: LoRA files and states (group "saving"), sample images
(group "sampling"), and progress and logs (group "advanced": our `progress_file`, and sd-scripts'
logging options, accepted only for compatibility).
"""

from __future__ import annotations

from .params_spec import Form, Param

SAMPLE_SAMPLERS = (
    "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
    "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
)

SAVING_PARAMS = (
    Param("output_dir", str, None, group="saving", managed=True, stand_in="run", path=True,
          help="Folder the LoRA files (and samples, states) are written to. Required."),
    Param("output_name", str, None, group="saving", managed=True,
          help="File name of the LoRA without extension. Unset: \"last\"."),
    Param("save_model_as", str, "safetensors", group="saving", choices=("safetensors", "ckpt", "pt"),
          help="File format; only safetensors carries the training metadata.",
          note="save_model_as ckpt/pt is not supported: LoRA files are written as .safetensors."),
    Param("save_precision", str, None, group="saving", choices=("float", "fp16", "bf16"),
          tab_default="fp16",  # half-size files, as the WebUI loads them anyway
          help="Precision of the saved weights. Unset: as trained (float32)."),
    Param("save_every_n_epochs", int, None, group="saving", ui="number", min=1,
          form=Form("dataset", 80, "Save every n epochs"),
          tab_default=1,  # every epoch's file can be previewed and published
          help="Also save a LoRA every n epochs."),
    Param("save_every_n_steps", int, None, group="saving", min=1,
          help="Also save a LoRA every n steps."),
    Param("save_state", bool, False, group="saving",
          tab_default=True,  # an interrupted run resumes from its last epoch
          help="With every save, also save the optimizer and scheduler state to resume from."),
    Param("resume", str, None, group="saving", managed=True, path=True,
          help="Continue a run from a state folder written by save_state."),
    Param("training_comment", str, None, group="saving", kohya_key="ss_training_comment",
          help="Free text stored in the LoRA's metadata."),
)

SAMPLING_PARAMS = (
    Param("sample_prompts", str, None, group="sampling", path=True,
          help="File of prompts (.txt, .toml or .json) rendered while training."),
    Param("sample_every_n_epochs", int, None, group="sampling", ui="number", min=1,
          form=Form("samples", 20, "Sample every n epochs"),
          help="Render the sample prompts every n epochs (takes precedence over steps)."),
    Param("sample_every_n_steps", int, None, group="sampling", min=1,
          help="Render the sample prompts every n steps."),
    Param("sample_sampler", str, "ddim", group="sampling", ui="dropdown", choices=SAMPLE_SAMPLERS,
          form=Form("samples", 30, "Sample sampler"),
          help="Sampler used for the sample images."),
)

LOGGING_PARAMS = (
    Param("log_with", str, None, group="advanced", choices=("tensorboard", "wandb", "all"),
          help="sd-scripts logging backend.",
          note="log_with is accepted for compatibility and ignored: progress goes to the progress file."),
    Param("logging_dir", str, None, group="advanced", path=True,
          help="sd-scripts logging folder.",
          note="logging_dir is accepted for compatibility and ignored: progress goes to the progress file."),
    Param("progress_file", str, None, group="advanced", managed=True, path=True,
          help="Where the JSON-lines progress events go. Unset: standard output."),
)
