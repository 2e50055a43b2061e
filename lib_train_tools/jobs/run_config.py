"""From a version's saved settings to the trainer options of one run, validated before it is queued.

A version's settings (``settings.json``) are one flat dict: trainer option names from the registry
(``train/params.py``) plus the tab's own settings declared here in `RUN_PARAMS` (the base model,
LoRA or LoCon, repeats, a sample prompt, ...), declared once with the registry's `Param` record.
`build_run_config` maps them to trainer options; `check_run_config` validates them with the
trainer's own loader so every problem is reported at submit time, and `write_run_files` writes
``config.toml`` (and the sample prompt file) into the run folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..projects.atomic import atomic_write_text
from ..projects.layout import PROCESSED_FOLDER_PATTERN, VersionPaths
from ..train.config import ConfigError, load_config, save_config
from ..train.params import PARAMS_BY_NAME, Param, get_param
from .job import CONFIG_FILE, SAMPLE_PROMPTS_FILE, JobError

NETWORK_TYPES = ("LoRA", "LoCon")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

RUN_PARAMS: tuple[Param, ...] = (
    Param("base_model", str, None, group="model", ui="text",
          help="Checkpoint to train on: its title in the checkpoint list, or a file path."),
    Param("network_type", str, "LoRA", group="network", ui="dropdown", choices=NETWORK_TYPES,
          help="LoRA trains the attention and MLP layers; LoCon also the 3x3 convolutions (conv_dim "
               "and conv_alpha, which default to network_dim and network_alpha)."),
    Param("repeats", int, None, group="dataset", ui="number", min=1, max=10000,
          help="How often each image is seen per epoch (the number in processed/<repeats>_<project>). "
               "Unset: keep the processed folder's repeats."),
    Param("sample_prompt", str, None, group="sampling", ui="text",
          help="Prompt(s) rendered with the LoRA after every epoch (one per line; sd-scripts flags such "
               "as --n, --w, --h, --d, --s, --l allowed). Empty: no samples."),
    Param("preview_all_epochs", bool, False, group="sampling", ui="checkbox",
          help="When a run completes, render the preview grid of every epoch's file."),
    Param("activation_tag", str, None, group="dataset", ui="text",
          help="Trigger word of the LoRA, written into its published card as the activation text."),
)
RUN_PARAMS_BY_NAME: dict[str, Param] = {p.name: p for p in RUN_PARAMS}
_clash = set(RUN_PARAMS_BY_NAME) & set(PARAMS_BY_NAME)
if _clash:  # the tab's settings and trainer options share one flat dict
    raise ValueError(f"run settings clash with trainer options: {sorted(_clash)}")

# Trainer options whose tab default differs from the registry's (sd-scripts-compatible) default.
TAB_DEFAULTS: dict[str, Any] = {
    "caption_extension": ".txt",   # preprocessing writes .txt captions
    "save_every_n_epochs": 1,      # every epoch's file can be previewed and published
    "save_state": True,            # an interrupted run resumes from its last epoch
    "save_precision": "fp16",      # half-size files, as the WebUI loads them anyway
}
# Options the job sets itself; a value for them in the settings is not used.
MANAGED_OPTIONS = ("train_data_dir", "output_dir", "output_name", "pretrained_model_name_or_path",
                   "progress_file", "resume")


def get_run_param(name: str) -> Param:
    try:
        return RUN_PARAMS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"no run setting is called {name!r}") from None


def resolve_base_model(value: Any, checkpoints: Mapping[str, Path] | None = None) -> Path:
    """The file of the chosen base model: a title from ``checkpoints`` (title -> path) or a path."""
    if value is None or not str(value).strip():
        raise JobError("no base model chosen: pick the checkpoint to train on")
    text = str(value).strip()
    if checkpoints and text in checkpoints:
        return Path(checkpoints[text])
    return Path(text).expanduser()


def build_run_config(version: VersionPaths, settings: Mapping[str, Any], run_dir: Path, output_name: str,
                     base_model_path: Path | None = None,
                     checkpoints: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """Trainer options for one run of ``version`` with ``settings``; JobError when it cannot run.

    ``base_model_path`` wins over the ``base_model`` setting (resolved with ``checkpoints``).
    """
    _check_dataset(version, settings)
    base = base_model_path if base_model_path is not None else resolve_base_model(settings.get("base_model"),
                                                                                  checkpoints)
    if not Path(base).is_file() and not Path(base).is_dir():
        raise JobError(f"base model {base} does not exist: choose another checkpoint")
    options = dict(TAB_DEFAULTS)
    options.update((k, v) for k, v in settings.items()
                   if k in PARAMS_BY_NAME and k not in MANAGED_OPTIONS and v is not None)
    options.update(train_data_dir=str(version.processed_parent), output_dir=str(run_dir),
                   output_name=output_name, pretrained_model_name_or_path=str(base))
    if "reg_data_dir" not in options and _has_reg_images(version):
        options["reg_data_dir"] = str(version.reg)
    _apply_network_type(options, settings.get("network_type") or get_run_param("network_type").default)
    _apply_sample_prompt(options, settings.get("sample_prompt"), run_dir)
    return options


def unused_settings(settings: Mapping[str, Any]) -> list[str]:
    """Setting names that are neither trainer options nor run settings, or that the job sets itself."""
    return sorted(k for k in settings
                  if (k not in PARAMS_BY_NAME and k not in RUN_PARAMS_BY_NAME) or k in MANAGED_OPTIONS)


def check_run_config(options: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """(TrainConfig, warnings) from the trainer's own loader; JobError listing every problem."""
    try:
        return load_config(overrides=dict(options))
    except ConfigError as exc:
        raise JobError(f"the settings cannot be trained: {exc}") from exc


def write_run_files(run_dir: Path, cfg: Any, sample_prompt: str | None = None) -> Path:
    """Write ``config.toml`` (and the sample prompt file when there is a prompt); returns the config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if sample_prompt and sample_prompt.strip():
        atomic_write_text(run_dir / SAMPLE_PROMPTS_FILE, sample_prompt.strip() + "\n")
    path = run_dir / CONFIG_FILE
    save_config(cfg, str(path))
    return path


def _check_dataset(version: VersionPaths, settings: Mapping[str, Any]) -> None:
    folder = version.processed_dir()
    if folder is None:
        raise JobError(f"version {version.project}/{version.name} has no processed dataset yet: "
                       "preprocess the dataset first")
    if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        raise JobError(f"the processed folder {folder.name} has no images: preprocess the dataset again")
    repeats = settings.get("repeats")
    if repeats is not None and int(repeats) != version.processed_repeats():
        raise JobError(f"repeats is {repeats} in the settings but the processed folder is {folder.name}: "
                       "apply the repeats to the dataset first")


def _has_reg_images(version: VersionPaths) -> bool:
    if not version.reg.is_dir():
        return False
    return any(sub.is_dir() and PROCESSED_FOLDER_PATTERN.match(sub.name)
               and any(p.suffix.lower() in IMAGE_SUFFIXES for p in sub.iterdir()) for sub in version.reg.iterdir())


def _apply_network_type(options: dict[str, Any], network_type: str) -> None:
    if network_type not in NETWORK_TYPES:
        raise JobError(f"network_type {network_type!r} is not one of {', '.join(NETWORK_TYPES)}")
    if network_type == "LoRA":
        options.pop("conv_dim", None)
        options.pop("conv_alpha", None)
        return
    options.setdefault("conv_dim", options.get("network_dim", get_param("network_dim").default))
    options.setdefault("conv_alpha", options.get("network_alpha", get_param("network_alpha").default))


def _apply_sample_prompt(options: dict[str, Any], prompt: Any, run_dir: Path) -> None:
    if prompt is None or not str(prompt).strip():
        return
    options["sample_prompts"] = os.fspath(run_dir / SAMPLE_PROMPTS_FILE)
    if not options.get("sample_every_n_epochs") and not options.get("sample_every_n_steps"):
        options["sample_every_n_epochs"] = 1
