"""Samplers for sample images: k-diffusion-style pure functions over a denoiser callable.

The DDPM schedule becomes the noise levels of Karras et al. 2022 ("Elucidating the Design Space
of Diffusion-Based Generative Models"): ``sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)`` and
``x = x_ddpm / sqrt(alpha_bar_t)``, so ``x = x0 + sigma * noise``. A denoiser ``D(x, sigma)``
returns its estimate of x0; ``DiscreteDenoiser`` builds one from an epsilon- or v-predicting U-Net
and ``CFGDenoiser`` adds classifier-free guidance.

Every sampler has the head ``sample_x(model, x, sigmas, extra_args=None, callback=None,
generator=None)``: ``model(x, sigma_batch, **extra_args)`` is a denoiser, ``x`` starts at noise
times ``sigmas[0]``, ``sigmas`` ends with 0. Schedules (``discrete_sigmas``, ``ddim_sigmas``) are
pure functions, so any sampler runs on any schedule. ``SAMPLERS`` pairs a name with both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from .noise_schedule import alphas_cumprod

# (x_in, t, **cond) -> the U-Net's raw output (epsilon or v).
ModelFn = Callable[..., torch.Tensor]
Denoiser = Callable[..., torch.Tensor]
Callback = Optional[Callable[[dict], Any]]


# The smallest alpha_bar a sampler sees (the A1111 / Forge WebUIs' stand-in for a zero terminal alpha_bar).
SAMPLING_MIN_ALPHA_BAR = 4.8973451890853435e-08


class SamplerError(ValueError):
    """An unknown sampler or an impossible schedule."""


def model_sigmas(table: torch.Tensor | None = None) -> torch.Tensor:
    """sigma_t for every training timestep, ascending (float32).

    A zero-terminal-SNR schedule (Lin et al. 2024) has alpha_bar = 0, so sigma = infinity, at its
    last step; for sampling that alpha_bar is raised to ``SAMPLING_MIN_ALPHA_BAR`` (sigma about
    4519), the value the A1111 and Forge WebUIs put there for such models, so samplers start from a
    finite (and, after c_in scaling, practically pure-noise) level. Other steps are untouched: the
    rescaled schedule's next-to-last alpha_bar is about 2e-7.
    """
    acp = alphas_cumprod() if table is None else table.double()
    acp = acp.clamp(min=SAMPLING_MIN_ALPHA_BAR)
    return ((1.0 - acp) / acp).sqrt().float()


def sigma_to_timestep(sigma: torch.Tensor, sigmas_table: torch.Tensor) -> torch.Tensor:
    """Fractional timestep of ``sigma``, linear in log-sigma between the two nearest table entries
    (k-diffusion's discrete schedule); sigmas outside the table are clamped to its ends."""
    log_table = sigmas_table.to(sigma.device, torch.float32).log()
    log_sigma = sigma.float().log().clamp(log_table[0], log_table[-1])
    high = torch.searchsorted(log_table, log_sigma).clamp(1, log_table.shape[0] - 1)
    low = high - 1
    weight = (log_sigma - log_table[low]) / (log_table[high] - log_table[low])
    return low.float() + weight


def timestep_to_sigma(t: torch.Tensor, sigmas_table: torch.Tensor) -> torch.Tensor:
    """sigma at a fractional timestep, interpolated in log-sigma (inverse of ``sigma_to_timestep``)."""
    log_table = sigmas_table.float().log()
    t = torch.as_tensor(t, dtype=torch.float32).clamp(0, log_table.shape[0] - 1)
    low = t.floor().long().clamp(max=log_table.shape[0] - 2)
    weight = t - low.float()
    return (torch.lerp(log_table[low], log_table[low + 1], weight)).exp()


def discrete_sigmas(steps: int, sigmas_table: torch.Tensor) -> torch.Tensor:
    """k-diffusion's discrete schedule (what the WebUI's "Euler a" uses): ``steps`` timesteps evenly
    spaced from the last to 0 (fractional ones interpolated in log-sigma), then a final 0.

    Equals diffusers' ``timestep_spacing="linspace"`` wherever the timesteps are whole numbers
    (``(len - 1) / (steps - 1)`` integral, e.g. 10 steps); diffusers interpolates sigma linearly."""
    _check_steps(steps)
    t = torch.linspace(sigmas_table.shape[0] - 1, 0, steps)
    return torch.cat([timestep_to_sigma(t, sigmas_table), torch.zeros(1)])


def ddim_sigmas(steps: int, sigmas_table: torch.Tensor) -> torch.Tensor:
    """DDIM's timesteps, then a final 0 (``set_alpha_to_one=True``: the last step lands on the
    clean estimate).

    Stable Diffusion's schedule: the "uniform" skip of Song et al. 2021, ``k * (len // steps) + 1``
    for k = steps-1..0, as its scheduler config and the WebUI's DDIM choose them (diffusers:
    ``timestep_spacing="leading"``, ``steps_offset=1``). It never visits the last timestep (20
    steps start at t = 951), which a zero-terminal-SNR model needs: its pure-noise level is that
    step alone. For such a table (``reaches_zero_snr``) the steps are spaced from the end instead,
    ``round(len - k * len / steps) - 1`` for k = 0..steps-1 (Lin et al. 2024, sec. 3.3, "Sample
    from the Last Timestep"; diffusers' ``timestep_spacing="trailing"``)."""
    _check_steps(steps)
    count = sigmas_table.shape[0]
    if reaches_zero_snr(sigmas_table):
        t = (torch.round(count - torch.arange(steps, dtype=torch.float64) * (count / steps)) - 1).long()
    else:
        t = (torch.arange(steps - 1, -1, -1) * (count // steps) + 1).clamp(max=count - 1)
    return torch.cat([sigmas_table.float()[t], torch.zeros(1)])


def reaches_zero_snr(sigmas_table: torch.Tensor) -> bool:
    """Whether ``sigmas_table`` (``model_sigmas``) comes from a zero-terminal-SNR schedule: its last
    sigma is the clamped stand-in for infinity (about 4519); Stable Diffusion's own ends near 14.6."""
    terminal = ((1.0 - SAMPLING_MIN_ALPHA_BAR) / SAMPLING_MIN_ALPHA_BAR) ** 0.5
    return bool(sigmas_table[-1].item() >= 0.999 * terminal)


def _check_steps(steps: int) -> None:
    if not 1 <= steps <= 1000:
        raise SamplerError(f"sampling steps must be between 1 and 1000, got {steps}")


@dataclass(frozen=True)
class DiscreteDenoiser:
    """An epsilon- or v-predicting DDPM model as a denoiser D(x, sigma) (Karras et al. 2022, table 1).

    Input scaling c_in = 1 / sqrt(sigma^2 + 1) turns x back into the DDPM sample; the timestep is
    ``sigma_to_timestep(sigma)``. Epsilon: D = x - sigma * eps. v (Salimans & Ho 2022, sec. 4):
    D = x / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) * v.
    """

    model: ModelFn
    sigmas_table: torch.Tensor
    v_prediction: bool = False

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **cond: Any) -> torch.Tensor:
        sigma = _per_sample(sigma, x).float()
        scale = _expand(1.0 / (sigma.square() + 1.0).sqrt(), x)
        t = sigma_to_timestep(sigma, self.sigmas_table)
        out = self.model(x * scale, t, **cond).float()
        if self.v_prediction:
            return x * scale.square() - _expand(sigma, x) * scale * out
        return x - _expand(sigma, x) * out


@dataclass(frozen=True)
class CFGDenoiser:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6): D_u + scale * (D_c - D_u).

    Conditional and unconditional halves run as one batch of 2B. ``cond`` and ``uncond`` are dicts
    of keyword tensors for the model (``context``, ``y``); None entries are left out.
    """

    denoiser: Denoiser

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: dict, uncond: dict,
                 cond_scale: float = 7.5) -> torch.Tensor:
        if set(_present(cond)) != set(_present(uncond)):
            raise SamplerError(f"cond keys {sorted(_present(cond))} and uncond keys {sorted(_present(uncond))} differ")
        sigma = _per_sample(sigma, x)
        both = {k: torch.cat([v, _present(uncond)[k]]) for k, v in _present(cond).items()}
        out = self.denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), **both)
        conditional, unconditional = out.chunk(2)
        return unconditional + (conditional - unconditional) * cond_scale


def _present(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _per_sample(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(sigma, device=x.device).reshape(-1).expand(x.shape[0])


def _expand(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(x.shape, generator=generator, device=device).to(x.device, x.dtype)


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """Split a step into a deterministic part down to ``sigma_down`` and fresh noise ``sigma_up``,
    with sigma_down^2 + sigma_up^2 = sigma_to^2 (the ancestral step of Song et al. 2021, eq. 16,
    in sigma form as k-diffusion's ``get_ancestral_step``)."""
    if sigma_to == 0:
        return 0.0, 0.0
    up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - up ** 2) ** 0.5, up


@torch.no_grad()
def sample_euler(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                 callback: Callback = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Euler steps on the probability-flow ODE (Karras et al. 2022, algorithm 2 without churn)."""
    extra_args = extra_args or {}
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = model(x, torch.full((x.shape[0],), sigma, device=x.device), **extra_args)
        _report(callback, x, i, sigma, denoised)
        x = denoised + (x - denoised) * (sigma_next / sigma)
    return x


def sample_ddim(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                callback: Callback = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """DDIM with eta = 0 (Song et al. 2021, eq. 12). In sigma form its update is
    x_next = D + sigma_next * (x - D) / sigma, the Euler step of the same ODE (Karras et al. 2022,
    sec. 3), so it runs ``sample_euler``; the DDIM part is the schedule, ``ddim_sigmas``."""
    return sample_euler(model, x, sigmas, extra_args, callback, generator)


@torch.no_grad()
def sample_euler_ancestral(model: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None,
                           callback: Callback = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Euler ancestral: an Euler step down to sigma_down, then fresh noise of size sigma_up
    (k-diffusion's ``sample_euler_ancestral``, eta = 1; the WebUI's "Euler a")."""
    extra_args = extra_args or {}
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = model(x, torch.full((x.shape[0],), sigma, device=x.device), **extra_args)
        _report(callback, x, i, sigma, denoised)
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next)
        x = x + (x - denoised) / sigma * (sigma_down - sigma)
        if sigma_next > 0:
            x = x + _noise_like(x, generator) * sigma_up
    return x


def _report(callback: Callback, x: torch.Tensor, i: int, sigma: float, denoised: torch.Tensor) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})


@dataclass(frozen=True)
class SamplerSpec:
    """A named sampler: its loop, its schedule, and the name the WebUI's infotext uses."""

    sample: Callable[..., torch.Tensor]
    schedule: Callable[[int, torch.Tensor], torch.Tensor]
    display_name: str


SAMPLERS = {
    "ddim": SamplerSpec(sample_ddim, ddim_sigmas, "DDIM"),
    "euler": SamplerSpec(sample_euler, discrete_sigmas, "Euler"),
    "euler_a": SamplerSpec(sample_euler_ancestral, discrete_sigmas, "Euler a"),
}
_ALIASES = {"k_euler": "euler", "k_euler_a": "euler_a"}
FALLBACK_SAMPLER = "euler_a"


def resolve_sampler(name: str) -> tuple[str, str | None]:
    """Our sampler for an sd-scripts sampler name, and a warning when we substitute another."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key in SAMPLERS:
        return key, None
    fallback = SAMPLERS[FALLBACK_SAMPLER].display_name
    return FALLBACK_SAMPLER, (f"sample sampler {name!r} is not implemented; using {fallback} "
                              f"(available: {', '.join(sorted(SAMPLERS))})")
