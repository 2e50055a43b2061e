"""The training loop: a recipe of named steps over epochs and batches.

Each optimizer step seeds its own random generator from (seed, step), so noise, timesteps and
dropout of step k are the same whether the run was interrupted or not. The loop stops after the
planned steps, on a cancel request (after finishing the current step: it then saves a checkpoint
and the state), or on a non-finite loss (nothing more is written; the last good file stays). Every
save checks the weights too (``saving.NonFiniteWeights``): a finite loss does not prove finite weights.
With held-out images, the validation loss is measured after the epochs and steps ``validation.is_due``
names (``validation.py``), from its own fixed draws, so it never shifts the training's random numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from .. import torch_compat
from .data import EpochLoader
from .protocol import CheckpointEvent, EpochEvent, StepEvent
from .sample_schedule import maybe_sample
from .saving import Position, epoch_file, final_file, last_file_note, save_checkpoint, save_state, step_file
from .step import add_training_noise, compute_loss, encode_batch, predict, unet_kernels
from .step_slowdown import StepSlowdown, slowdown_message
from .validation import Validator, maybe_validate

SEED_MIX = 1_000_003


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; training cannot continue from here."""


@dataclass
class Meter:
    """Loss average and speed, for progress events."""

    started: float = field(default_factory=time.perf_counter)
    steps: int = 0
    recent: list = field(default_factory=list)
    epoch_losses: list = field(default_factory=list)

    def add(self, loss: float) -> None:
        self.steps += 1
        self.recent = (self.recent + [loss])[-50:]
        self.epoch_losses.append(loss)

    def average(self) -> float:
        return sum(self.recent) / len(self.recent)

    def it_per_sec(self) -> float:
        return self.steps / max(time.perf_counter() - self.started, 1e-9)


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    mixed = (seed * SEED_MIX + step) % (2**63)
    torch.manual_seed(mixed)  # LoRA dropout draws from the global generator
    return torch.Generator(device).manual_seed(mixed)


def optimizer_step(s, batches: list, step: int) -> float:
    """Forward and backward over ``batches`` (one accumulation group), then one optimizer step."""
    generator = step_generator(s.seed, step, s.device)
    total = 0.0
    for batch in batches:
        latents, cond = encode_batch(s.models, s.tokenizers, batch, s.settings, s.device, s.weight_dtype, generator,
                                     s.latent_moments)
        noisy, noise, t = add_training_noise(latents, s.settings, generator)
        with unet_kernels(s.device):
            with torch_compat.autocast(s.device, s.weight_dtype, enabled=s.weight_dtype != torch.float32):
                pred = predict(s.models.unet, noisy, t, cond, s.weight_dtype)
            loss = compute_loss(pred, latents, noise, t, batch.loss_weights, s.settings, batch.masks) / len(batches)
            (s.scaler.scale(loss) if s.scaler else loss).backward()
        total += loss.item()
    params = [p for group in s.optimizer.param_groups for p in group["params"]]
    s.dist.average_gradients(params)
    if s.scaler:  # fp16: gradients come scaled; unscale before clipping, skip steps that overflowed
        s.scaler.unscale_(s.optimizer)
    if s.cfg.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(params, s.cfg.max_grad_norm)
    if s.scaler:
        s.scaler.step(s.optimizer)
        s.scaler.update()
    else:
        s.optimizer.step()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    return total


def accumulation_groups(loader: EpochLoader, size: int):
    group = []
    for i in range(len(loader)):
        group.append(loader[i])
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def train(s, progress, stop, start: Position) -> tuple[str, Position]:
    """Run from ``start`` to the end of the plan; returns ("completed" | "cancelled", position)."""
    meter, plan, step = Meter(), s.plan, start.step
    slowdown = StepSlowdown()  # a sustained jump in step time: VRAM spilling into system RAM
    validator = Validator(s)
    if s.dataset.validation_note and s.dist.is_main:
        progress.warning(s.dataset.validation_note)
    s.network.train()
    for epoch in range(start.epoch, plan.epochs):
        done_in_epoch = start.batch_in_epoch if epoch == start.epoch else 0
        loader = EpochLoader(s.dataset, epoch, s.dist.rank, s.dist.world_size, done_in_epoch,
                             s.latent_cache, s.text_cache)
        meter.epoch_losses = []
        for batches in accumulation_groups(loader, s.cfg.gradient_accumulation_steps):
            started = time.perf_counter()
            loss = optimizer_step(s, batches, step)  # its loss.item() waits for the device
            found = slowdown.add(time.perf_counter() - started)
            if found is not None and s.dist.is_main:
                progress.warning(slowdown_message(found, s.device.type))
            step, done_in_epoch = step + 1, done_in_epoch + len(batches)
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"the loss became {loss} at step {step} (epoch {epoch + 1}). {last_file_note(s)}")
            meter.add(loss)
            report_step(s, progress, meter, step, epoch, loss)
            position = Position(step, epoch, done_in_epoch)
            if s.dist.any_true(stop.requested):
                return "cancelled", save_on_stop(s, progress, position)
            if step >= plan.total_steps:
                break
            maybe_save_steps(s, progress, step, epoch)
            maybe_sample(s, progress, epoch, step, epoch_end=False)
            maybe_validate(s, progress, validator, epoch, step, epoch_end=False)
        end_epoch(s, progress, meter, epoch, step, validator)
        if step >= plan.total_steps:
            break
    return "completed", Position(step, plan.epochs, 0)


def report_step(s, progress, meter: Meter, step: int, epoch: int, loss: float) -> None:
    if not s.dist.is_main:
        return
    rate = meter.it_per_sec()
    memory = torch.cuda.max_memory_allocated() / 2**20 if s.device.type == "cuda" else None
    progress.write(StepEvent(step=step, total_steps=s.plan.total_steps, epoch=epoch + 1, loss=loss,
                             avg_loss=meter.average(), lr=s.scheduler.get_last_lr()[0], it_per_sec=rate,
                             eta_sec=(s.plan.total_steps - step) / rate if rate else None, memory_mb=memory))


def maybe_save_steps(s, progress, step: int, epoch: int) -> None:
    n = s.cfg.save_every_n_steps
    if n and step % n == 0 and s.dist.is_main:
        path = save_checkpoint(s, step_file(s.output_dir, s.output_name, step), epoch, step)
        progress.write(CheckpointEvent(path=str(path), step=step, epoch=epoch + 1))


def end_epoch(s, progress, meter: Meter, epoch: int, step: int, validator: Validator | None = None) -> None:
    last = epoch + 1 == s.plan.epochs or step >= s.plan.total_steps
    if s.dist.is_main:
        avg = sum(meter.epoch_losses) / len(meter.epoch_losses) if meter.epoch_losses else None
        progress.write(EpochEvent(epoch=epoch + 1, total_epochs=s.plan.epochs, avg_loss=avg))
        n = s.cfg.save_every_n_epochs
        if n and (epoch + 1) % n == 0 and not last:
            path = save_checkpoint(s, epoch_file(s.output_dir, s.output_name, epoch + 1), epoch + 1, step)
            progress.write(CheckpointEvent(path=str(path), step=step, epoch=epoch + 1))
            if s.cfg.save_state:
                save_state(s, Position(step, epoch + 1, 0))
    maybe_sample(s, progress, epoch, step, epoch_end=True)
    if validator is not None:
        maybe_validate(s, progress, validator, epoch, step, epoch_end=True)


def save_on_stop(s, progress, position: Position) -> Position:
    if s.dist.is_main:
        path = save_checkpoint(s, final_file(s.output_dir, s.output_name), position.epoch + 1, position.step)
        progress.write(CheckpointEvent(path=str(path), step=position.step, epoch=position.epoch + 1))
        save_state(s, position)
    return position
