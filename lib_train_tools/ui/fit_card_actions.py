"""Handlers of the Train tab's "Fit my card" and "Undo fit" buttons (plain functions; no gradio).

*Fit my card* estimates the run the version's settings would start (``jobs/run_options``) for the
chosen checkpoint's sizes, lets ``train/fit_card.fit_settings`` pick the memory savers that bring
the estimate under the card's size, and saves the changed options the way a preset or the advanced
box is saved (``train_actions._save_all``: settings saved, form filled again). Its reply is the form
(``train_actions.APPLIED_EXTRAS`` after the fields) and then the undo record: JSON of the version
and each changed option's previous value (null: it was unset), kept in a hidden textbox.
When nothing fits, the savers are still saved (the smallest estimate reached) and the notice is a
warning that says so. *Undo fit* puts those values back through the same path and empties the record.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from .. import torch_compat

from ..jobs.run_options import trainer_options
from ..models.detect import Architecture
from ..projects import load_settings
from ..train.fit_card import FitResult, fit_settings
from ..train.model_sizes import ModelSizes, model_sizes
from .replies import NO_CHANGE, Notice, Reply
from .selection import require_version
from .train_actions import _applied, _save_all, base_architecture
from .vram import local_accelerator

DEFAULT_CARD_GIB = 8.0


def default_card_gib() -> float:
    """The card's size when this process already knows it (``vram.local_accelerator``), else 8 GiB."""
    known = local_accelerator().total_gb
    return round(known, 1) if known else DEFAULT_CARD_GIB


def bf16_supported() -> bool:
    """Whether bf16 can be chosen: asked of the card only when CUDA already runs in this process
    (as ``local_accelerator`` does); otherwise assumed (every card since NVIDIA Ampere has it)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch_compat.bf16_hardware("cuda")  # native bf16, as the trainer decides it
    return True


def fp8_usable() -> bool:
    """Whether ``fp8_base`` can be suggested: the trainer allows it on CUDA with torch >= 2.1 only."""
    return torch.cuda.is_available() and torch_compat.fp8_storage_problem("cuda") is None


def model_for_fit(services, settings: dict[str, Any]) -> tuple[str, ModelSizes]:
    """The chosen checkpoint's family and sizes; ValueError when no readable one is chosen."""
    arch: Architecture | None = base_architecture(services, settings)
    if arch is None:
        raise ValueError("choose a readable base model first: the fit needs its sizes")
    return arch.family, model_sizes(arch)


def fit_card(services, selection: str, card_gib: Any) -> Reply:
    """Fit the version's settings to a card of ``card_gib`` GiB; the form, then the undo record."""
    version = require_version(services, selection)
    if card_gib in (None, "") or float(card_gib) <= 0:
        raise ValueError("enter the card's memory in GiB (for example 8)")
    settings = load_settings(version)
    family, sizes = model_for_fit(services, settings)
    result = fit_settings(trainer_options(settings), family, sizes, float(card_gib), bf16=bf16_supported(),
                          fp8=fp8_usable())
    if not result.steps:  # nothing to change: the form as saved, the last undo record kept
        notice = Notice("ok" if result.fits else "warning", result.summary())
        return Reply(notice, _applied(services, version, settings) + (NO_CHANGE,))
    changes = result.changes
    previous = {name: settings.get(name) for name in changes}
    saved = _save_all(services, version, {**settings, **changes}, "Fit my card")
    undo = json.dumps({"selection": selection, "previous": previous})
    return Reply(_notice(result, saved.notice), tuple(saved.values) + (undo,))


def undo_fit(services, selection: str, record: str | None) -> Reply:
    """Put back the values the last fit changed (``record``: its JSON); the form, then an empty record."""
    if not record:
        raise ValueError("nothing to undo: no fit was applied since the page was opened")
    data = json.loads(record)
    if data.get("selection") != selection:
        raise ValueError(f"the last fit was for {data.get('selection')}, not the chosen version; choose it to undo")
    version = require_version(services, selection)
    settings = load_settings(version)
    for name, value in data["previous"].items():
        if value is None:
            settings.pop(name, None)
        else:
            settings[name] = value
    saved = _save_all(services, version, settings, f"Undo fit: {', '.join(data['previous'])} restored")
    return Reply(saved.notice, tuple(saved.values) + ("",))


def _notice(result: FitResult, saved: Notice | None) -> Notice:
    kind = "ok" if result.fits else "warning"
    return Notice(kind, result.summary() + ("\n" + saved.text if saved is not None else ""))
