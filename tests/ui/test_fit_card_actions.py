"""Fit my card / Undo fit handlers: the saved settings, the form refresh and the undo record."""

from __future__ import annotations

import json

import pytest

from lib_train_tools.projects import load_settings, update_settings
from lib_train_tools.train.model_sizes import released_sizes
from lib_train_tools.ui import fit_card_actions as fit_actions
from lib_train_tools.ui import train_actions as actions
from lib_train_tools.ui.replies import NO_CHANGE
from lib_train_tools.ui.train_form import form_fields
from lib_train_tools.ui.vram import Accelerator

# no mixed precision, AdamW, batch 2; gradient_checkpointing left unset (the default: off)
HEAVY = {"mixed_precision": "no", "optimizer_type": "AdamW",
         "train_batch_size": 2, "network_dim": 32, "resolution": "512"}
N_FORM = len(form_fields()) + len(actions.APPLIED_EXTRAS)


@pytest.fixture
def sd1(monkeypatch):
    """The released SD1.5 sizes stand for the chosen base model (no real checkpoint needed)."""
    monkeypatch.setattr(fit_actions, "model_for_fit", lambda services, settings: ("sd1", released_sizes("sd1")))


def shown(reply, name):
    value = reply.values[[f.name for f in form_fields()].index(name)]
    return value.get("value") if hasattr(value, "get") else value


def test_fit_saves_the_savers_and_undo_restores_the_previous_values(services, selection, sd1):
    version = services.store.version("テスト", "v1")
    update_settings(version, HEAVY)
    before = load_settings(version)
    reply = fit_actions.fit_card(services, selection, 6)
    assert reply.notice.kind == "ok"
    assert "fits: about 8.6 -> 3.1 GiB" in reply.notice.text and "Fit my card for テスト/v1" in reply.notice.text
    assert "- gradient_checkpointing on (about 3.1 GiB)" in reply.notice.text
    saved = load_settings(version)
    assert {k: saved[k] for k in ("mixed_precision", "gradient_checkpointing")} == {
        "mixed_precision": "bf16", "gradient_checkpointing": True}
    assert saved["train_batch_size"] == 2 and saved["optimizer_type"] == "AdamW"  # not needed, not changed
    assert len(reply.values) == N_FORM + 1
    assert shown(reply, "mixed_precision") == "bf16"
    record = json.loads(reply.values[-1])
    assert record == {"selection": selection, "previous": {"mixed_precision": "no", "gradient_checkpointing": None}}

    undone = fit_actions.undo_fit(services, selection, reply.values[-1])
    assert load_settings(version) == before and "gradient_checkpointing" not in load_settings(version)
    assert undone.notice.kind == "ok" and "mixed_precision, gradient_checkpointing restored" in undone.notice.text
    assert shown(undone, "mixed_precision") == "no"
    assert undone.values[-1] == "" and len(undone.values) == N_FORM + 1


def test_a_card_that_already_fits_changes_nothing_and_keeps_the_undo_record(services, selection, sd1):
    version = services.store.version("テスト", "v1")
    update_settings(version, HEAVY)
    reply = fit_actions.fit_card(services, selection, 24)
    assert reply.notice.kind == "ok" and "already fit (about 8.6 GiB); nothing changed" in reply.notice.text
    assert reply.values[-1] is NO_CHANGE
    assert load_settings(version) == HEAVY


def test_a_card_too_small_is_a_warning_with_the_smallest_estimate(services, selection, sd1):
    update_settings(services.store.version("テスト", "v1"), HEAVY)
    reply = fit_actions.fit_card(services, selection, 2)
    assert reply.notice.kind == "warning"
    assert "does NOT fit even with every saver: the smallest estimate reached is about 2.8 GiB" in reply.notice.text
    assert json.loads(reply.values[-1])["previous"]["train_batch_size"] == 2


def test_refusals(services, selection, sd1):
    with pytest.raises(ValueError, match="card's memory in GiB"):
        fit_actions.fit_card(services, selection, 0)
    with pytest.raises(ValueError, match="nothing to undo"):
        fit_actions.undo_fit(services, selection, "")
    services.store.create_version("テスト", "v2")
    record = json.dumps({"selection": "テスト/v2", "previous": {"mixed_precision": "no"}})
    with pytest.raises(ValueError, match="the last fit was for テスト/v2"):
        fit_actions.undo_fit(services, selection, record)


def test_without_a_readable_base_model_there_is_nothing_to_fit(services, selection):
    with pytest.raises(ValueError, match="choose a readable base model first"):
        fit_actions.fit_card(services, selection, 8)


def test_the_chosen_checkpoints_own_sizes_are_fitted(services, selection, tmp_path):
    from lib_train_tools.models.checkpoint_factory import write_checkpoint

    path = write_checkpoint(tmp_path / "tiny.safetensors", family="sd1")
    family, sizes = fit_actions.model_for_fit(services, {"base_model": str(path)})
    assert family == "sd1" and sizes.source == "the checkpoint's header"
    assert sizes.unet < released_sizes("sd1").unet


def test_the_default_card_size(monkeypatch):
    monkeypatch.setattr(fit_actions, "local_accelerator", lambda: Accelerator("cuda", "RTX", 23.99))
    assert fit_actions.default_card_gib() == 24.0
    monkeypatch.setattr(fit_actions, "local_accelerator", lambda: Accelerator("cuda"))
    assert fit_actions.default_card_gib() == 8.0
    monkeypatch.setattr(fit_actions, "local_accelerator", lambda: Accelerator("cpu"))
    assert fit_actions.default_card_gib() == fit_actions.DEFAULT_CARD_GIB == 8.0


def test_the_buttons_sit_in_the_train_tab_with_their_feedback_line(services, selection):
    from lib_train_tools.ui.app import build_ui

    demo = build_ui(services)
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for name in ("tt_card_gib", "tt_fit_card", "tt_undo_fit", "tt_fit_feedback", "tt_fit_undo"):
        assert name in by_id, name
    assert by_id["tt_card_gib"].value == fit_actions.default_card_gib()
    assert by_id["tt_fit_undo"].visible is False
    ids = {block._id: elem for elem, block in by_id.items()}
    for button in ("tt_fit_card", "tt_undo_fit"):
        event = next(d for d in demo.get_config_file()["dependencies"]
                     if by_id[button]._id in [t[0] if isinstance(t, (list, tuple)) else t for t in d["targets"]])
        outputs = [ids.get(o) for o in event["outputs"]]
        assert outputs[:2] == ["tt_status", "tt_fit_feedback"] and outputs[-1] == "tt_fit_undo"
        assert len(outputs) == 2 + N_FORM + 1
