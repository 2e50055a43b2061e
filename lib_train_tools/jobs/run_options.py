"""The Train tab's own settings, and the one rule that turns a version's settings into trainer options.

A version's settings (``settings.json``) are one flat dict: trainer option names from the registry
(``train/params.py``) plus the tab's own settings declared here in `RUN_PARAMS` (the base model,
LoRA or LoCon, repeats, a sample prompt, ..., and the ``grid_<option>`` lists of
``grid_settings.py``), declared once with the registry's `Param` record, form slot included.

`trainer_options` is the only place settings become trainer options: the job submission calls it
with the run's folders, the settings check and the VRAM estimate with the registry's stand-ins, so
what the tab checks is what a run gets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..train.params import CHECK_STAND_INS, MANAGED_OPTIONS, PARAMS_BY_NAME, TAB_DEFAULTS, Form, Param, get_param
from .grid_settings import GRID_PARAMS
from .job import SAMPLE_PROMPTS_FILE, JobError

NETWORK_TYPES = ("LoRA", "LoCon")
# LoCon's convolution options -> the linear-layer option each defaults to; under LoRA they are dropped.
_LOCON_DEFAULTS = {"conv_dim": "network_dim", "conv_alpha": "network_alpha"}
LOCON_OPTIONS: tuple[str, ...] = tuple(_LOCON_DEFAULTS)

RUN_PARAMS: tuple[Param, ...] = (
    Param("base_model", str, None, group="model", ui="checkpoint", form=Form("network", 10, "Base model"),
          help="Checkpoint to train on: its title in the checkpoint list, or a file path."),
    Param("network_type", str, "LoRA", group="network", ui="dropdown", choices=NETWORK_TYPES,
          form=Form("network", 20, "Network type"),
          help="LoRA trains the attention and MLP layers; LoCon also the 3x3 convolutions (conv_dim "
               "and conv_alpha, which default to network_dim and network_alpha)."),
    Param("repeats", int, None, group="dataset", ui="number", min=1, max=10000,
          form=Form("dataset", 50, "Repeats per image"),
          help="How often each image is seen per epoch (the number in processed/<repeats>_<project>). "
               "Unset: 512 / images (at least 4), worked out again at each Preprocess."),
    Param("sample_prompt", str, None, group="sampling", ui="textarea", form=Form("samples", 10, "Sample prompts"),
          help="Prompt(s) rendered with the LoRA after every epoch (one per line; sd-scripts flags such "
               "as --n, --w, --h, --d, --s, --l allowed). Empty: no samples."),
    Param("preview_all_epochs", bool, False, group="sampling", ui="checkbox",
          form=Form("samples", 40, "Preview grid of all epochs"),
          help="When a run completes, render the preview grid of every epoch's file."),
    Param("activation_tag", str, None, group="dataset",  # set by the tag editor, not on the form
          help="Trigger word of the LoRA, written into its published card as the activation text."),
) + GRID_PARAMS  # grid_<option>: several values of a grid option (grid_settings.py)
RUN_PARAMS_BY_NAME: dict[str, Param] = {p.name: p for p in RUN_PARAMS}
_clash = set(RUN_PARAMS_BY_NAME) & set(PARAMS_BY_NAME)
if _clash:  # the tab's settings and trainer options share one flat dict
    raise ValueError(f"run settings clash with trainer options: {sorted(_clash)}")


def get_run_param(name: str) -> Param:
    try:
        return RUN_PARAMS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"no run setting is called {name!r}") from None


def network_type(settings: Mapping[str, Any]) -> str:
    """LoRA or LoCon (or what else the settings say): the setting, else its default."""
    return settings.get("network_type") or RUN_PARAMS_BY_NAME["network_type"].default


def uses_locon(settings: Mapping[str, Any]) -> bool:
    """Whether the settings train LoCon, so the convolution options (`LOCON_OPTIONS`) apply."""
    return network_type(settings) == "LoCon"


def trainer_options(settings: Mapping[str, Any], run: Mapping[str, str] | None = None,
                    reg_data_dir: str | None = None) -> dict[str, Any]:
    """The trainer options a run gets from a version's settings.

    The tab's defaults, then every trainer option the settings set (except those the job sets
    itself), then ``run``: the values the job sets for this run (folders, output name, base model),
    or, when None, the settings check's stand-ins. ``reg_data_dir`` (the version's regularisation
    images) is used unless the settings name a folder. Then the network type (LoCon's convolution
    options default to network_dim and network_alpha; LoRA drops them) and the sample prompt (its
    file in the output folder, rendered every epoch unless the settings say when). JobError for a
    network type that is neither LoRA nor LoCon.
    """
    places = dict(CHECK_STAND_INS if run is None else run)
    foreign = sorted(set(places) - set(MANAGED_OPTIONS))
    if foreign:
        raise ValueError(f"a run sets only the options the job manages, not {', '.join(foreign)}")
    options = dict(TAB_DEFAULTS)
    options.update((k, v) for k, v in settings.items()
                   if k in PARAMS_BY_NAME and k not in MANAGED_OPTIONS and v is not None)
    options.update(places)
    if reg_data_dir is not None:
        options.setdefault("reg_data_dir", reg_data_dir)
    apply_network_type(options, network_type(settings))
    apply_sample_prompt(options, settings.get("sample_prompt"))
    return options


def apply_network_type(options: dict[str, Any], kind: str) -> None:
    """LoRA: no convolution options; LoCon: each defaults to its linear-layer counterpart."""
    if kind not in NETWORK_TYPES:
        raise JobError(f"network_type {kind!r} is not one of {', '.join(NETWORK_TYPES)}")
    for option, counterpart in _LOCON_DEFAULTS.items():
        if kind == "LoRA":
            options.pop(option, None)
        else:
            options.setdefault(option, options.get(counterpart, get_param(counterpart).default))


def apply_sample_prompt(options: dict[str, Any], prompt: Any) -> None:
    """A sample prompt is written next to the run's files and rendered every epoch unless set otherwise."""
    if prompt is None or not str(prompt).strip():
        return
    options["sample_prompts"] = os.fspath(Path(options["output_dir"]) / SAMPLE_PROMPTS_FILE)
    if not options.get("sample_every_n_epochs") and not options.get("sample_every_n_steps"):
        options["sample_every_n_epochs"] = 1
