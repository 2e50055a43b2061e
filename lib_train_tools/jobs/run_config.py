"""From a version's saved settings to the trainer options of one run, validated before it is queued.

`build_run_config` checks the version's dataset and base model and hands the run's folders to
`run_options.trainer_options` (the one rule from settings to trainer options, shared with the
settings check); `check_run_config` validates the options with the trainer's own loader so every
problem is reported at submit time, and `write_run_files` writes ``config.toml`` (and the sample
prompt file) into the run folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..projects.layout import PROCESSED_FOLDER_PATTERN, VersionPaths
from ..train.config import ConfigError, TrainConfig, load_config, save_config
from ..train.params import MANAGED_OPTIONS, PARAMS_BY_NAME, TAB_DEFAULTS
from .job import CONFIG_FILE, SAMPLE_PROMPTS_FILE, JobError
from .run_options import NETWORK_TYPES, RUN_PARAMS, RUN_PARAMS_BY_NAME, get_run_param, trainer_options

__all__ = [
    "IMAGE_SUFFIXES", "MANAGED_OPTIONS", "NETWORK_TYPES", "RUN_PARAMS", "RUN_PARAMS_BY_NAME", "TAB_DEFAULTS",
    "build_run_config", "check_run_config", "get_run_param", "resolve_base_model", "unused_settings",
    "write_run_files",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


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
    run = {"train_data_dir": str(version.processed_parent), "output_dir": str(run_dir), "output_name": output_name,
           "pretrained_model_name_or_path": str(base)}
    return trainer_options(settings, run, str(version.reg) if _has_reg_images(version) else None)


def unused_settings(settings: Mapping[str, Any]) -> list[str]:
    """Setting names that are neither trainer options nor run settings, or that the job sets itself."""
    return sorted(k for k in settings
                  if (k not in PARAMS_BY_NAME and k not in RUN_PARAMS_BY_NAME) or k in MANAGED_OPTIONS)


def check_run_config(options: Mapping[str, Any]) -> tuple[TrainConfig, list[str]]:
    """(TrainConfig, warnings) from the trainer's own loader; JobError listing every problem."""
    try:
        return load_config(overrides=dict(options))
    except ConfigError as exc:
        raise JobError(f"the settings cannot be trained: {exc}") from exc


def write_run_files(run_dir: Path, cfg: TrainConfig, sample_prompt: str | None = None) -> Path:
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
