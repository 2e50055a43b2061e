"""Fake of modules/sd_models.py (A1111 v1.10 behaviour; see forge.py for Forge's)."""

import os


class CheckpointInfo:
    def __init__(self, filename, models_dir):
        self.filename = os.path.abspath(filename)
        self.name = os.path.relpath(self.filename, models_dir)   # relative, with subfolder and extension
        self.name_for_extra = os.path.splitext(os.path.basename(filename))[0]
        self.model_name = os.path.splitext(self.name.replace("/", "_").replace("\\", "_"))[0]
        self.title = self.name
        self.ids = [self.model_name, self.name, self.title]

    def register(self):
        checkpoints_list[self.title] = self
        for alias in self.ids:
            checkpoint_aliases[alias] = self


checkpoints_list = {}
checkpoint_aliases = {}


class FakeModel:
    def __init__(self, checkpoint):
        self.sd_model_checkpoint = checkpoint
        self.device = "cuda"
        self.moves = []

    def to(self, device):
        self.device = device
        self.moves.append(device)
        return self


class SdModelData:
    def __init__(self):
        self.sd_model = None


model_data = SdModelData()
calls = []


def send_model_to_cpu(m):
    calls.append(("send_model_to_cpu", m))
    if m is not None:
        m.to("cpu")


def unload_model_weights(sd_model=None, info=None):
    from modules import shared

    send_model_to_cpu(sd_model or shared.sd_model)   # reading shared.sd_model loads a model
    return sd_model


def send_model_to_device(m):
    calls.append(("send_model_to_device", m))
    m.to("cuda")


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    calls.append(("reload_model_weights", info))
