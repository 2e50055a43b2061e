"""Registry entries for the noise and the loss: offset and pyramid noise, Min-SNR weighting, timestep range.

They are sd-scripts' "advanced" options and keep that group (the TOML table they are written to).
"""

from __future__ import annotations

from .params_spec import Form, Param

NOISE_PARAMS = (
    Param("noise_offset", float, None, group="advanced", ui="number", min=0.0, max=1.0,
          form=Form("memory", 30), kohya_key="ss_noise_offset",
          help="Add this much per-channel constant noise so the LoRA can learn very dark or bright "
               "images (about 0.05-0.1)."),
    Param("multires_noise_iterations", int, None, group="advanced", min=1, max=64,
          kohya_key="ss_multires_noise_iterations",
          help="Pyramid noise: number of scales added to the noise (6-10 are typical)."),
    Param("multires_noise_discount", float, 0.3, group="advanced", min=0.0, max=1.0,
          kohya_key="ss_multires_noise_discount",
          help="Pyramid noise: weight factor per scale."),
    Param("min_snr_gamma", float, None, group="advanced", ui="number", min=0.0, max=100.0,
          form=Form("memory", 40), kohya_key="ss_min_snr_gamma",
          help="Min-SNR loss weighting with this gamma (5 is the paper's value). Unset: off."),
    Param("min_timestep", int, None, group="advanced", min=0, max=1000,
          help="Lowest timestep sampled in training. Unset: 0."),
    Param("max_timestep", int, None, group="advanced", min=0, max=1000,
          help="Timesteps are sampled below this value. Unset: 1000."),
)
