"""Multi-process training with ``torchrun``: process group, gradient averaging, main-process checks.

Started as ``torchrun --nproc_per_node N -m lib_train_tools.train ...``, each process reads its
rank from the environment, joins a group (NCCL on GPUs, gloo on CPU), trains on its shard of
every epoch, and averages the LoRA gradients before each optimizer step. Only rank 0 writes
files and progress. A plain ``python -m lib_train_tools.train`` is a group of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.initialised:
            dist.barrier()

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Mean of each gradient over all processes (one flat all-reduce)."""
        if not self.initialised:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def any_true(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any process (so all stop together on a cancel)."""
        if not self.initialised:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device or "cpu")
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def close(self) -> None:
        if self.initialised:
            dist.destroy_process_group()
            self.initialised = False


def init_distributed(device_override: str | None = None) -> DistContext:
    """A group from torchrun's environment variables, or a single process when they are absent."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(device=torch.device(device_override) if device_override else None)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = torch.cuda.is_available() and (device_override is None or device_override.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank=rank, world_size=world_size, device=device, initialised=True)
