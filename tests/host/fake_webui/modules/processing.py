"""Fake of modules/processing.py: StableDiffusionProcessingTxt2Img and process_images.

process_images mirrors the documented override handling: an ``sd_model_checkpoint`` override
that is not a known alias is dropped (the current model is used, silently); known options are
applied for the call and restored afterwards when ``override_settings_restore_afterwards``. The
image is a deterministic colour from (checkpoint, prompt, seed), so tests can tell cells apart.
"""

import hashlib
import os
import re

from PIL import Image

from modules import call_queue, sd_models, shared

runs = []


class StableDiffusionProcessingTxt2Img:
    def __init__(self, **kwargs):
        self.kwargs = dict(kwargs)
        self.override_settings = dict(kwargs.get("override_settings") or {})
        self.override_settings_restore_afterwards = kwargs.get("override_settings_restore_afterwards", True)
        self.prompt = kwargs.get("prompt", "")
        self.closed = False
        self.scripts = None

    def close(self):
        self.closed = True


class Processed:
    def __init__(self, images, info=""):
        self.images = images
        self.info = info


def process_images(p):
    if not call_queue.queue_lock.held_by_me():
        raise RuntimeError("process_images called without the queue lock")
    if shared.state.active is None:
        raise RuntimeError("process_images called outside state.begin()/end()")
    if sd_models.checkpoint_aliases.get(p.override_settings.get("sd_model_checkpoint")) is None:
        p.override_settings.pop("sd_model_checkpoint", None)
    stored = {k: shared.opts.data.get(k) for k in p.override_settings}
    shared.opts.data.update(p.override_settings)
    try:
        checkpoint = shared.opts.data.get("sd_model_checkpoint")
        clip_skip = shared.opts.data.get("CLIP_stop_at_last_layers")
        key = f"{checkpoint}|{p.prompt}|{p.kwargs.get('seed')}".encode()
        colour = tuple(hashlib.sha1(key).digest()[:3])
        image = Image.new("RGB", (p.kwargs.get("width", 64), p.kwargs.get("height", 64)), colour)
        runs.append({"checkpoint": checkpoint, "clip_skip": clip_skip, "prompt": p.prompt, "kwargs": p.kwargs,
                     "closed_before": p.closed, "loras_found": _findable(p.prompt),
                     "model_device": getattr(sd_models.model_data.sd_model, "device", None)})
        return Processed([image])
    finally:
        if p.override_settings_restore_afterwards:
            shared.opts.data.update(stored)


def _findable(prompt):
    """For each <lora:NAME:...> in the prompt: is NAME.safetensors anywhere under the LoRA folder
    (the Lora extension's rule: base name, subfolders included)?"""
    names = re.findall(r"<lora:([^:>]+):", prompt)
    found = {name: False for name in names}
    for folder, _, files in os.walk(shared.cmd_opts.lora_dir or ""):
        for name in names:
            if f"{name}.safetensors" in files:
                found[name] = True
    return found
