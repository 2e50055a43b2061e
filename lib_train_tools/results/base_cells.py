"""Rendering the weight-0 column of a preview grid once instead of once per epoch.

At weight 0 a LoRA adds nothing, so every epoch's weight-0 cell of one seed is the same picture
of the base model (pixel for pixel with our renderer; the WebUI's ``<lora:name:0>`` is the same).
``ReuseBaseCells`` wraps a ``PreviewRenderer`` and hands out a copy of the first such image for the
other rows: a grid of N epochs saves N-1 renders per seed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any


class ReuseBaseCells:
    """A ``PreviewRenderer`` that renders each distinct LoRA-free cell once (for one preview)."""

    def __init__(self, renderer: Any):
        self.renderer = renderer
        self._images: dict = {}
        self.reused = 0

    def render(self, request: Any):
        if request.lora_path is not None and request.weight != 0:
            return self.renderer.render(request)
        key = replace(request, lora_path=None, weight=0.0)
        if key in self._images:
            self.reused += 1
        else:
            self._images[key] = self.renderer.render(request)
        return self._images[key].copy()

    def release(self) -> None:
        """The wrapped renderer lets go of what it holds (the kept images go with this object)."""
        self.renderer.release()

    def close(self) -> None:
        self.renderer.close()
