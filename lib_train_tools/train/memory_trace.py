"""Live tensor bytes of a piece of torch code, counted the same way on meta and on real tensors.

`LiveBytes` is a ``TorchDispatchMode``: every tensor an operator returns while it is active is
looked up by its storage, and a storage seen for the first time adds its ``nbytes()`` to
``current`` (``peak`` keeps the maximum). A ``weakref.finalize`` on the storage takes the bytes
off again when the storage is freed, which is when the last tensor using it goes, views and
tensors autograd saved for the backward pass included. Views share their base's storage, so they
cost nothing; an in-place operator returns an existing storage, so it costs nothing either.

This counts what an allocator is asked for at the level of tensors: the sum of the storages alive
at each moment. It sees every allocation that goes through the dispatcher (forward, backward
run by the autograd engine on this thread, optimizer steps), but not a kernel's private scratch
space (cuDNN/cuBLAS workspaces) nor the allocator's rounding and caching, which the caller adds.

Meta tensors have storages with a size and no memory, so the very same count runs for a model
that does not fit anywhere: that is what ``traced_estimate.py`` does. Tensors that exist before
the mode starts (a model's weights) are counted with `adopt`.

This relies on a storage's Python object living exactly as long as the C++ storage (torch's
"PyObject preservation" for ``UntypedStorage``, added in 2023 for torch 2.1): the unit tests check
that each finalizer fires when its storage goes, views and autograd's saved tensors included.
Only private torch modules are imported (``torch.utils._python_dispatch``, ``_pytree``); both
exist from 2.1 to the newest release (only the newest was run here).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MB = 2**20


@dataclass
class PhasePeak:
    """The largest ``current`` seen during one named phase, and the operator that reached it."""

    name: str
    start_bytes: int
    peak_bytes: int
    peak_op: str = ""


class TraceStopped(RuntimeError):
    """The caller asked the trace to stop (``LiveBytes(stop=...)``)."""


class LiveBytes(TorchDispatchMode):
    """Bytes of all storages alive (see the module docstring); ``peak`` is the maximum so far.

    ``stop``: an event that, once set, makes the next operator raise `TraceStopped` (a background
    trace is stopped that way when the program exits)."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        super().__init__()
        self.stop = stop
        self.current = 0
        self.peak = 0
        self.peak_op = ""
        self.phases: list[PhasePeak] = []
        self._sizes: dict[int, int] = {}
        self._finalizers: dict[int, weakref.finalize] = {}

    # ------------------------------------------------------------------ counting

    def adopt(self, tensors: Iterable[torch.Tensor]) -> int:
        """Count tensors made before the mode started (weights); returns the bytes newly counted."""
        before = self.current
        for tensor in tensors:
            self._count(tensor, "adopt")
        return self.current - before

    def storage_bytes(self, tensors: Iterable[torch.Tensor]) -> int:
        """Bytes of the distinct storages under ``tensors`` (counted or not), views counted once."""
        seen: dict[int, int] = {}
        for tensor in tensors:
            storage = tensor.untyped_storage()
            seen[storage._cdata] = storage.nbytes()
        return sum(seen.values())

    def phase(self, name: str) -> PhasePeak:
        """Start a new phase (forward, backward, ...): its own peak is kept in ``phases``."""
        record = PhasePeak(name, self.current, self.current)
        self.phases.append(record)
        return record

    def close(self) -> None:
        """Stop listening for frees (the counts stay as they are)."""
        for finalizer in self._finalizers.values():
            finalizer.detach()
        self._finalizers.clear()

    @property
    def live_storages(self) -> int:
        return len(self._sizes)

    def _count(self, tensor: torch.Tensor, op: str) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self._sizes:
            return
        size = storage.nbytes()
        self._sizes[key] = size
        self.current += size
        self._finalizers[key] = weakref.finalize(storage, self._free, key)
        if self.current > self.peak:
            self.peak, self.peak_op = self.current, op
        if self.phases and self.current > self.phases[-1].peak_bytes:
            self.phases[-1].peak_bytes, self.phases[-1].peak_op = self.current, op

    def _free(self, key: int) -> None:
        self.current -= self._sizes.pop(key, 0)
        self._finalizers.pop(key, None)

    # ------------------------------------------------------------------ the mode

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.stop is not None and self.stop.is_set():
            raise TraceStopped("the trace was stopped")
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self._count(value, str(func))
        return out
