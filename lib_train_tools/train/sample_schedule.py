"""When to render sample images during training, and where they go.

Samples are rendered on the main process every ``sample_every_n_epochs`` epochs or
``sample_every_n_steps`` steps (the epoch setting wins, as in sd-scripts), with the LoRA applied,
into ``<output_dir>/sample/<name>_<e000003|000120>_<index:02d>_<time>_<seed>.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

from .protocol import SampleEvent
from .sample_images import generate_sample, resolve_prompt, save_sample
from .sample_prompts import load_sample_prompts


def is_due(cfg, epoch: int, step: int, epoch_end: bool) -> bool:
    """Whether samples are due after this step (``epoch`` from 0)."""
    if not cfg.sample_prompts:
        return False
    if cfg.sample_every_n_epochs:
        return epoch_end and (epoch + 1) % cfg.sample_every_n_epochs == 0
    return (not epoch_end) and bool(cfg.sample_every_n_steps) and step % cfg.sample_every_n_steps == 0


def maybe_sample(s, progress, epoch: int, step: int, epoch_end: bool) -> list[Path]:
    if not s.dist.is_main or not is_due(s.cfg, epoch, step, epoch_end):
        return []
    prompts = load_sample_prompts(s.cfg.sample_prompts, *s.resolution)
    for note in prompts.warnings:
        progress.warning(note)
    tag = f"e{epoch + 1:06d}" if epoch_end else f"{step:06d}"
    stamp = time.strftime("%Y%m%d%H%M%S")
    written = []
    was_training = s.network.training
    s.network.eval()
    try:
        for index, prompt in enumerate(prompts.prompts):
            prompt, warning = resolve_prompt(prompt, s.cfg.sample_sampler)
            if warning:
                progress.warning(warning)
            assert prompt.sampler is not None  # resolve_prompt always names the sampler
            image = generate_sample(s.models, prompt, prompt.sampler, s.device, s.weight_dtype,
                                    s.settings.clip_skip, s.settings.token_windows)
            path = s.output_dir / "sample" / f"{s.output_name}_{tag}_{index:02d}_{stamp}_{prompt.seed}.png"
            save_sample(image, path, prompt)
            progress.write(SampleEvent(path=str(path), step=step, epoch=epoch + 1, prompt=prompt.prompt))
            written.append(path)
    finally:
        s.network.train(was_training)
    return written
