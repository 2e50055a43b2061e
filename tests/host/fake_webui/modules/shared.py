"""Fake of modules/shared.py: cmd_opts, opts (Options/OptionInfo), state, interrogator.

In the WebUI ``shared.sd_model`` is a property that loads a model when read; the fake records a
read in ``sd_model_reads`` so tests can prove the adapter never reads it.
"""

import sys
import types
from types import SimpleNamespace

cmd_opts = SimpleNamespace(lora_dir=None, ckpt_dir=None, api=True, nowebui=False, api_auth=None,
                           gradio_auth=None, gradio_auth_path=None)


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None,
                 section=None, refresh=None, comment_before="", comment_after="", infotext=None,
                 restrict_api=False, category_id=None):
        self.default, self.label, self.component, self.component_args = default, label, component, component_args
        self.section, self.category_id = section, category_id
        self.comment_after = ""
        self.restart = False
        self.do_not_save = False

    def info(self, info):
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def needs_restart(self):
        self.restart = True
        return self


class Options:
    def __init__(self):
        self.data = {"sd_model_checkpoint": None, "CLIP_stop_at_last_layers": 1}
        self.data_labels = {}

    def add_option(self, key, info):
        if info.section is None:  # Options.dumpjson indexes item.section[0]
            raise ValueError(f"option {key} has no section")
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def __getattr__(self, item):
        if item in ("data", "data_labels"):
            raise AttributeError(item)
        if item in self.data:
            return self.data[item]
        if item in self.data_labels:
            return self.data_labels[item].default
        raise AttributeError(item)


opts = Options()


class State:
    def __init__(self):
        self.jobs = []
        self.active = None

    def begin(self, job="(unknown)"):
        self.active = job
        self.jobs.append(job)

    def end(self):
        self.active = None


state = State()


class Interrogator:
    def __init__(self):
        self.images = []

    def interrogate(self, pil_image):
        self.images.append(pil_image)
        return "a photo of a cat, sitting"


interrogator = Interrogator()
sd_model_reads = []


class _SharedModule(types.ModuleType):
    @property
    def sd_model(self):
        from modules import sd_models

        sd_model_reads.append(1)
        if sd_models.model_data.sd_model is None:
            sd_models.model_data.sd_model = sd_models.FakeModel("loaded-by-reading-shared.sd_model")
        return sd_models.model_data.sd_model


sys.modules[__name__].__class__ = _SharedModule
