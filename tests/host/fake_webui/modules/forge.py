"""Switches the fake ``sd_models`` to Forge's behaviour (sd_models.py of Forge dfdcbab6).

Forge: ``unload_model_weights`` unloads every model through ``memory_management``; the A1111 move
functions are no-ops; ``forge_model_reload`` exists and loads lazily on the next generation.
"""

from modules import sd_models


def make_forge():
    def unload_model_weights(sd_model=None, info=None):
        sd_models.calls.append(("unload_all_models", None))

    def noop(*args, **kwargs):
        sd_models.calls.append(("forge_noop", None))

    def forge_model_reload():
        sd_models.calls.append(("forge_model_reload", None))
        return sd_models.model_data.sd_model, False

    sd_models.unload_model_weights = unload_model_weights
    sd_models.send_model_to_cpu = noop
    sd_models.send_model_to_device = noop
    sd_models.reload_model_weights = noop
    sd_models.forge_model_reload = forge_model_reload
