"""The DDPM training schedule of Stable Diffusion and the noise the trainer adds to latents.

Everything is a pure function of its inputs. Every random draw goes through an explicit
``torch.Generator`` so a resumed run, seeded the same way, draws the same numbers. Draws happen on
the generator's device and are then moved to the data's device, so a CPU generator also drives
GPU training.

Notation (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"): ``beta_t`` the per-step
variance, ``alpha_bar_t = prod_{s<=t} (1 - beta_s)`` (``alphas_cumprod``), timesteps 0..999.
Every function that reads the schedule takes it as ``table`` (None: the standard one), so a run
with a zero-terminal-SNR model (``training_alphas_cumprod(zero_terminal_snr=True)``) uses the
rescaled table for noising, targets and loss weights alike.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012
# Pyramid noise draws a scale factor r ~ U(2, 4) per level, as in kohya's multires noise.
_PYRAMID_MIN_RATIO, _PYRAMID_MAX_RATIO = 2.0, 4.0


class ScheduleError(ValueError):
    """A timestep range or noise option that the schedule cannot honour."""


def alphas_cumprod(num_steps: int = NUM_TRAIN_TIMESTEPS, beta_start: float = BETA_START,
                   beta_end: float = BETA_END) -> torch.Tensor:
    """``alpha_bar_t`` for t = 0..num_steps-1 (float64) of the "scaled linear" schedule.

    beta_t = linspace(sqrt(beta_start), sqrt(beta_end), num_steps)^2 (the latent-diffusion
    schedule, Rombach et al. 2022); alpha_bar_t = prod (1 - beta) (Ho et al. 2020, eq. 4).
    """
    if num_steps < 2 or not 0.0 < beta_start < beta_end < 1.0:
        raise ScheduleError(f"alphas_cumprod: need num_steps >= 2 and 0 < beta_start < beta_end < 1, got "
                            f"{num_steps}, {beta_start}, {beta_end}")
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def rescale_zero_terminal_snr(table: torch.Tensor) -> torch.Tensor:
    """The schedule ``table`` (alpha_bar_t) rescaled so that the last timestep has SNR exactly 0.

    Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm 1:
    with ``s_t = sqrt(alpha_bar_t)``, shift every ``s_t`` down by the last one, ``s_T``, then stretch
    by ``s_0 / (s_0 - s_T)``, so ``s_0`` keeps its value and ``s_T`` becomes 0; alpha_bar = s^2. The
    betas implied by the new table (1 - alpha_bar_t / alpha_bar_{t-1}) stay in [0, 1], the last is 1.
    """
    table = table.double()
    if table.dim() != 1 or table.shape[0] < 2:
        raise ScheduleError(f"rescale_zero_terminal_snr expects a 1-D schedule of >= 2 steps, got {tuple(table.shape)}")
    root = table.sqrt()
    first, last = root[0], root[-1]
    if not first > last:
        raise ScheduleError("rescale_zero_terminal_snr: alpha_bar must decrease from the first to the last step")
    return ((root - last) * (first / (first - last))).square()


@functools.cache
def _training_table(zero_terminal_snr: bool) -> torch.Tensor:
    table = alphas_cumprod()
    return rescale_zero_terminal_snr(table) if zero_terminal_snr else table


def training_alphas_cumprod(zero_terminal_snr: bool = False) -> torch.Tensor:
    """The schedule a run trains with (float64, a fresh copy): Stable Diffusion's scaled-linear
    table, rescaled to zero terminal SNR (``rescale_zero_terminal_snr``) when asked."""
    return _training_table(bool(zero_terminal_snr)).clone()


def _gather(t: torch.Tensor, like: torch.Tensor, table: torch.Tensor | None) -> torch.Tensor:
    """``table[t]`` as float32 on ``like``'s device, shaped to broadcast over ``like``'s C, H, W."""
    table = alphas_cumprod() if table is None else table
    values = table[_checked_indices(t, table)].to(like.device, torch.float32)
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def _checked_indices(t: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, device=table.device).long().reshape(-1)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= table.shape[0]):
        raise ScheduleError(f"timesteps must lie in 0..{table.shape[0] - 1}, got {int(t.min())}..{int(t.max())}")
    return t


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
              table: torch.Tensor | None = None) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise`` (Ho et al. 2020, eq. 4), in x0's dtype."""
    acp = _gather(t, x0, table)
    return (acp.sqrt() * x0.float() + (1.0 - acp).sqrt() * noise.float()).to(x0.dtype)


def v_target(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
             table: torch.Tensor | None = None) -> torch.Tensor:
    """Velocity ``v = sqrt(alpha_bar_t) noise - sqrt(1 - alpha_bar_t) x0`` (Salimans & Ho 2022, sec. 4)."""
    acp = _gather(t, x0, table)
    return (acp.sqrt() * noise.float() - (1.0 - acp).sqrt() * x0.float()).to(x0.dtype)


def snr(t: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
    """Signal-to-noise ratio ``alpha_bar_t / (1 - alpha_bar_t)`` per timestep, float32 on t's device."""
    t = torch.as_tensor(t)
    table = alphas_cumprod() if table is None else table.double()
    # float64 until the end: 1 - alpha_bar is ~1e-3 at t = 0, where float32 loses digits
    return (table / (1.0 - table))[_checked_indices(t, table)].to(t.device, torch.float32)


def sample_timesteps(batch: int, min_timestep: int = 0, max_timestep: int = NUM_TRAIN_TIMESTEPS,
                     generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """One integer timestep per sample, uniform in ``[min_timestep, max_timestep)``.

    ``min_timestep == max_timestep`` gives that timestep for every sample (as kohya does).
    """
    if not 0 <= min_timestep <= max_timestep <= NUM_TRAIN_TIMESTEPS or min_timestep >= NUM_TRAIN_TIMESTEPS:
        raise ScheduleError(f"timestep range min_timestep={min_timestep}, max_timestep={max_timestep} is invalid: "
                            f"need 0 <= min <= max <= {NUM_TRAIN_TIMESTEPS} and min < {NUM_TRAIN_TIMESTEPS}")
    if batch < 0:
        raise ScheduleError(f"sample_timesteps: batch must be >= 0, got {batch}")
    target = torch.device(device) if device is not None else _draw_device(generator)
    if min_timestep == max_timestep:
        return torch.full((batch,), min_timestep, dtype=torch.long, device=target)
    t = torch.randint(min_timestep, max_timestep, (batch,), generator=generator, device=_draw_device(generator))
    return t.to(target)


def input_perturbation(noise: torch.Tensor, gamma: float, generator: torch.Generator | None = None,
                       random_strength: bool = False) -> torch.Tensor:
    """The noise put into the model's input under input perturbation: ``noise + gamma * xi``.

    Ning et al. 2023, "Input Perturbation Reduces Exposure Bias in Diffusion Models": the
    network sees ``x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) (noise + gamma xi)`` with a fresh
    ``xi ~ N(0, I)``, while the target is still built from ``noise`` alone. With ``random_strength``
    gamma is scaled by one U(0, 1) draw per batch (sd-scripts' ``ip_noise_gamma_random_strength``).
    """
    if gamma < 0:
        raise ScheduleError(f"ip_noise_gamma must be >= 0, got {gamma}")
    strength = float(gamma)
    if random_strength:
        strength *= float(torch.rand((), generator=generator, device=_draw_device(generator)))
    xi = _randn(tuple(noise.shape), generator, noise)
    return (noise.float() + strength * xi).to(noise.dtype)


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=_draw_device(generator)).to(like.device, torch.float32)


def apply_noise_offset(noise: torch.Tensor, offset: float, generator: torch.Generator | None = None,
                       random_strength: bool = False) -> torch.Tensor:
    """``noise + offset * N(0, 1)`` drawn once per sample and channel (constant over H and W).

    The constant part lets the model move an image's mean brightness, which zero-mean noise never
    teaches (Guttenberg 2023, "Diffusion with offset noise"). With ``random_strength`` the offset
    is scaled by one U(0, 1) draw per batch, as kohya's ``noise_offset_random_strength``.
    """
    if offset < 0:
        raise ScheduleError(f"noise_offset must be >= 0, got {offset}")
    if noise.dim() != 4:
        raise ScheduleError(f"apply_noise_offset expects noise [B, C, H, W], got {tuple(noise.shape)}")
    strength = float(offset)
    if random_strength:
        strength *= float(torch.rand((), generator=generator, device=_draw_device(generator)))
    shift = _randn((noise.shape[0], noise.shape[1], 1, 1), generator, noise)
    return (noise.float() + strength * shift).to(noise.dtype)


def multires_noise(noise: torch.Tensor, iterations: int, discount: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Pyramid ("multi-resolution") noise: add coarser noise levels, then rescale to unit std.

    Level i (i = 0..iterations-1) is N(0, 1) at size (H / r^i, W / r^i) with r ~ U(2, 4), bilinearly
    upsampled to (H, W) and weighted by ``discount^i``; the pyramid stops once a level is 1 pixel
    wide. The sum is divided by its standard deviation (Whitaker 2023, "Multi-resolution noise for
    diffusion model training"; the variant kohya's sd-scripts use).
    """
    if iterations < 1:
        raise ScheduleError(f"multires_noise_iterations must be >= 1, got {iterations}")
    if noise.dim() != 4:
        raise ScheduleError(f"multires_noise expects noise [B, C, H, W], got {tuple(noise.shape)}")
    batch, channels, height, width = noise.shape
    total = noise.float().clone()
    for level in range(iterations):
        ratio = _PYRAMID_MIN_RATIO + (_PYRAMID_MAX_RATIO - _PYRAMID_MIN_RATIO) * float(
            torch.rand((), generator=generator, device=_draw_device(generator)))
        h, w = max(1, int(height / ratio ** level)), max(1, int(width / ratio ** level))
        coarse = _randn((batch, channels, h, w), generator, noise)
        total += F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False) * discount ** level
        if h == 1 or w == 1:
            break
    return (total / total.std()).to(noise.dtype)
