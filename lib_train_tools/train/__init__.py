"""The LoRA trainer: options (params, config), progress protocol, schedules, optimizers, data, loop.

Submodules are imported explicitly (`from lib_train_tools.train.config import load_config`); this
package imports nothing itself, so reading the option registry does not load torch.
"""
