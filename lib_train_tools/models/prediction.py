"""Noise (epsilon) or velocity (v) prediction, and the noise schedule: what the weights cannot show.

SD1.x and SDXL base predict noise. SD2.x comes in both kinds (512-base: epsilon, 768-v: v), so for
SD2 we run the WebUI's test denoise: at t=999 on a constant input a v-model's output is far below
its input, an epsilon model's is not. v-prediction SDXL finetunes trained on a zero-terminal-SNR
schedule (NoobAI-XL v-pred and its merges) carry empty marker tensors at the top level of the state
dict: ``v_pred`` for v-prediction, ``ztsnr`` for the rescaled schedule (Forge and ComfyUI read the
same keys). An explicit user setting always wins. The decision records how it was reached.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .unet import UNetModel

TEST_TIMESTEP = 999
TEST_VALUE = 0.5
V_THRESHOLD = -1.0
V_PRED_MARKER = "v_pred"
ZTSNR_MARKER = "ztsnr"
MARKER_KEYS = (V_PRED_MARKER, ZTSNR_MARKER)


@dataclass(frozen=True)
class PredictionType:
    v_prediction: bool
    reason: str
    zero_terminal_snr: bool = False

    @property
    def name(self) -> str:
        return "v_prediction" if self.v_prediction else "epsilon"


@torch.no_grad()
def test_denoise_score(unet: UNetModel) -> float:
    """Mean of (output - input) for a constant latent at t=999 with a constant context (WebUI's test)."""
    p = next(unet.parameters())
    cfg = unet.config
    x = torch.full((1, cfg.in_channels, 8, 8), TEST_VALUE, dtype=p.dtype, device=p.device)
    context = torch.full((1, 2, cfg.context_dim), TEST_VALUE, dtype=p.dtype, device=p.device)
    t = torch.tensor([TEST_TIMESTEP], device=p.device)
    y = None
    if cfg.adm_in_channels:
        y = torch.zeros((1, cfg.adm_in_channels), dtype=p.dtype, device=p.device)
    out = unet(x, t, context, y)
    return (out.float() - x.float()).mean().item()


def decide_prediction(family: str, unet: UNetModel | None, keys: set[str],
                      override: bool | None = None, zero_terminal_snr: bool | None = None) -> PredictionType:
    """Whether the model predicts v and trains on a zero-terminal-SNR schedule, and why we think so.

    ``override`` (v_parameterization) and ``zero_terminal_snr`` win over the detection when set.
    """
    prediction = _decide_v(family, unet, keys, override)
    if zero_terminal_snr is not None:
        state = "on" if zero_terminal_snr else "off"
        return replace(prediction, zero_terminal_snr=bool(zero_terminal_snr),
                       reason=f"{prediction.reason}; zero terminal SNR {state}, set explicitly "
                              f"(zero_terminal_snr = {zero_terminal_snr})")
    if ZTSNR_MARKER in keys:
        return replace(prediction, zero_terminal_snr=True,
                       reason=f"{prediction.reason}; zero terminal SNR: the checkpoint has a "
                              f"'{ZTSNR_MARKER}' marker tensor")
    return prediction


def _decide_v(family: str, unet: UNetModel | None, keys: set[str], override: bool | None) -> PredictionType:
    if override is not None:
        kind = "v-prediction" if override else "epsilon prediction"
        return PredictionType(bool(override), f"{kind} set explicitly (v_parameterization = {override})")
    if V_PRED_MARKER in keys:
        return PredictionType(True, f"the checkpoint has a '{V_PRED_MARKER}' marker tensor")
    if family != "sd2":
        name = "SD1.x" if family == "sd1" else "SDXL"
        return PredictionType(False, f"{name} models predict noise (set v_parameterization for a v finetune)")
    if unet is None:
        return PredictionType(False, "SD2.x U-Net not loaded, assumed epsilon prediction")
    score = test_denoise_score(unet)
    if score < V_THRESHOLD:
        return PredictionType(
            True, f"SD2.x test denoise: mean(output - input) = {score:.3f} < {V_THRESHOLD} -> v-prediction")
    return PredictionType(False, f"SD2.x test denoise: mean(output - input) = {score:.3f} >= {V_THRESHOLD} -> epsilon")
