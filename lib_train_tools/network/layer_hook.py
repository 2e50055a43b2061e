"""How an adapter hooks the layer it wraps, shared by ``LoRAModule`` and ``WeightAdapter``.

The adapter does not replace the layer in the model tree: ``apply()`` installs the adapter's
``forward`` as an instance attribute of the layer (shadowing the class's), ``remove()`` takes it
away again (or restores an instance ``forward`` the layer already had). So the model's own
``state_dict`` keys never change.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn


class LayerHook:
    """Mixin for an ``nn.Module`` adapter with a ``layer`` attribute and its own ``forward``."""

    layer: nn.Linear | nn.Conv2d
    _base_forward: Callable[[Tensor], Tensor] | None = None
    _had_instance_forward: bool = False

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def applied(self) -> bool:
        return self._base_forward is not None

    # Shadows nn.Module.apply(fn) on purpose: the adapter's public verb, used by callers and tests.
    def apply(self) -> None:  # type: ignore[override]
        """Route the wrapped layer's forward through this adapter (no-op when already applied)."""
        if self.applied:
            return
        layer = self.layer
        self._had_instance_forward = "forward" in layer.__dict__
        self._base_forward = layer.forward
        # An instance attribute shadowing the class's forward, on purpose (mypy forbids assigning to a method).
        layer.forward = self.forward  # type: ignore[method-assign, assignment]

    def remove(self) -> None:
        """Give the wrapped layer its own forward back."""
        base_forward = self._base_forward
        if base_forward is None:  # not applied
            return
        layer = self.layer
        if self._had_instance_forward:
            layer.forward = base_forward  # type: ignore[method-assign, assignment]  # as in apply()
        else:
            del layer.forward
        self._base_forward = None
