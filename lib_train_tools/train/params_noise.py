"""Registry entries for the noise and the loss: offset, pyramid and input-perturbation noise, the loss
type and its Huber schedule, Min-SNR and debiased-estimation weighting, the masked loss, timestep range.

They are sd-scripts' "advanced" options and keep that group (the TOML table they are written to).
"""

from __future__ import annotations

from .params_spec import Form, Param

LOSS_TYPES = ("l2", "l1", "huber", "smooth_l1")
HUBER_SCHEDULES = ("constant", "exponential", "snr")

NOISE_PARAMS = (
    Param("noise_offset", float, None, group="advanced", ui="number", min=0.0, max=1.0,
          form=Form("memory", 30, "Noise offset"), kohya_key="ss_noise_offset",
          help="Add this much per-channel constant noise so the LoRA can learn very dark or bright "
               "images (about 0.05-0.1)."),
    Param("noise_offset_random_strength", bool, False, group="advanced",
          kohya_key="ss_noise_offset_random_strength",
          help="Scale the noise offset by a random factor in 0..1, drawn once per batch."),
    Param("ip_noise_gamma", float, None, group="advanced", min=0.0, max=1.0, kohya_key="ss_ip_noise_gamma",
          help="Input perturbation noise (Ning et al. 2023): the U-Net's input gets this much extra noise "
               "that the target does not have (about 0.1). Unset: off."),
    Param("ip_noise_gamma_random_strength", bool, False, group="advanced",
          kohya_key="ss_ip_noise_gamma_random_strength",
          help="Scale ip_noise_gamma by a random factor in 0..1, drawn once per batch."),
    Param("multires_noise_iterations", int, None, group="advanced", min=1, max=64,
          kohya_key="ss_multires_noise_iterations",
          help="Pyramid noise: number of scales added to the noise (6-10 are typical)."),
    Param("multires_noise_discount", float, 0.3, group="advanced", min=0.0, max=1.0,
          kohya_key="ss_multires_noise_discount",
          help="Pyramid noise: weight factor per scale."),
    Param("min_snr_gamma", float, None, group="advanced", ui="number", min=0.0, max=100.0,
          form=Form("memory", 40, "Min-SNR gamma"), kohya_key="ss_min_snr_gamma",
          help="Min-SNR loss weighting with this gamma (5 is the paper's value). Unset: off."),
    Param("debiased_estimation_loss", bool, False, group="advanced", kohya_key="ss_debiased_estimation",
          help="Weight the loss by 1/sqrt(SNR) (1/(SNR+1) for v-prediction), the debiased estimation of "
               "Yu et al. 2023."),
    Param("loss_type", str, "l2", group="advanced", choices=LOSS_TYPES, kohya_key="ss_loss_type",
          help="Loss between prediction and target: l2 (squared error), l1, or the pseudo-Huber forms "
               "huber and smooth_l1, whose threshold follows huber_schedule."),
    Param("huber_schedule", str, "snr", group="advanced", choices=HUBER_SCHEDULES,
          kohya_key="ss_huber_schedule",
          help="Threshold of the huber / smooth_l1 loss over the timesteps: constant (huber_c), "
               "exponential (1 at t=0 down to huber_c at t=1000) or snr (by the noise level)."),
    Param("huber_c", float, 0.1, group="advanced", min=0.0001, max=10.0, kohya_key="ss_huber_c",
          help="Threshold (and decay) parameter of the huber / smooth_l1 loss."),
    Param("huber_scale", float, 1.0, group="advanced", min=0.0001, max=100.0, kohya_key="ss_huber_scale",
          help="Scale of the huber / smooth_l1 threshold (constant and exponential schedules)."),
    Param("masked_loss", bool, False, group="advanced", kohya_key="ss_masked_loss",
          help="Weight the loss per pixel by a mask: the image's alpha channel, else a greyscale "
               "<name>.mask.png beside the image (white: train, black: ignore). Images without one "
               "train everywhere."),
    Param("min_timestep", int, None, group="advanced", min=0, max=1000,
          help="Lowest timestep sampled in training. Unset: 0."),
    Param("max_timestep", int, None, group="advanced", min=0, max=1000,
          help="Timesteps are sampled below this value. Unset: 1000."),
)
