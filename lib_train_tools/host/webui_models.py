"""Freeing the WebUI's checkpoint for a training job and bringing it back, A1111 and Forge ways.

A1111 v1.10: ``sd_models.unload_model_weights(model)`` moves the loaded model to the CPU (VRAM is
freed, RAM is not); afterwards ``send_model_to_device`` puts it back, but only when that same model
is still the loaded one (``reload_model_weights`` would return at once for a model sitting on the
CPU). The mark saying "Train Tools moved this model" is kept on the model object itself, so the
extension loaded again by "Reload UI" during a job still puts it back. ``shared.sd_model`` is
never touched: reading it loads a model.

Forge: ``unload_model_weights()`` unloads every model from VRAM through its memory manager, and
its next generation loads what it needs again by itself, so nothing is done afterwards.

Both take the WebUI's queue lock, so a generation in progress finishes first and none starts
half-way through. The lock is not reentrant: never call these from code that holds it.
"""

from __future__ import annotations

from .webui_modules import call_queue, sd_models

LOG_PREFIX = "[Train Tools]"
MOVED_MARK = "train_tools_moved_to_ram"


def is_forge() -> bool:
    """Forge's ``sd_models`` loads through ``forge_model_reload``; A1111's has no such function."""
    return hasattr(sd_models, "forge_model_reload")


class ModelUnloader:
    def __init__(self, forge: bool | None = None):
        self.forge = is_forge() if forge is None else forge

    def unload(self) -> str:
        """Free VRAM from the WebUI's checkpoint; returns what was done (for the console)."""
        with call_queue.queue_lock:
            if self.forge:
                sd_models.unload_model_weights()
                return "unloaded the WebUI's models from VRAM (Forge loads them again when it next generates)"
            model = sd_models.model_data.sd_model
            if model is None:
                return "no WebUI checkpoint is loaded; nothing to unload"
            sd_models.unload_model_weights(model)
            setattr(model, MOVED_MARK, True)
            return "moved the WebUI's checkpoint to RAM for the training job"

    def reload(self) -> str:
        """Undo ``unload``: A1111 moves its model back from RAM; Forge needs nothing."""
        if self.forge:
            return ""
        with call_queue.queue_lock:
            model = sd_models.model_data.sd_model
            if model is None or not getattr(model, MOVED_MARK, False):
                return ""
            sd_models.send_model_to_device(model)
            setattr(model, MOVED_MARK, False)
            return "moved the WebUI's checkpoint back to its device for generating"
