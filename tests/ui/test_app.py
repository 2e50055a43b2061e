"""build_ui builds the whole tab on the installed gradio (run under gradio 3.41 and 4.40)."""

from __future__ import annotations

import gradio as gr

from lib_train_tools.ui.app import ROOT_ELEM_ID, build_ui
from lib_train_tools.ui.train_form import form_fields


def elem_ids(blocks: gr.Blocks) -> set[str]:
    return {b.elem_id for b in blocks.blocks.values() if getattr(b, "elem_id", None)}


def test_build_ui_has_every_panel_and_field(services, selection):
    demo = build_ui(services)
    assert isinstance(demo, gr.Blocks)
    ids = elem_ids(demo)
    for expected in (ROOT_ELEM_ID, "tt_status", "tt_selection", "tt_project", "tt_version", "tt_create_project",
                     "tt_upload", "tt_gallery", "tt_preprocess", "tt_tag_table", "tt_activation", "tt_undo",
                     "tt_steps", "tt_check", "tt_advanced", "tt_preset", "tt_progress_placeholder",
                     "tt_results_run", "tt_pv_render", "tt_pv_grid", "tt_pub_publish", "tt_pub_overwrite"):
        assert expected in ids, expected
    for field in form_fields():
        assert f"tt_opt_{field.name}" in ids, field.name


def test_the_pickers_start_with_the_stores_projects(services, selection):
    demo = build_ui(services)
    project = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "tt_project")
    assert project.value == "テスト"


def test_every_event_shows_its_outcome_in_the_status_line(services):
    demo = build_ui(services)
    status = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "tt_status")
    dependencies = demo.get_config_file()["dependencies"]
    user_events = [d for d in dependencies if d.get("outputs")]
    assert len(user_events) > 40
    assert all(d["outputs"][0] == status._id for d in user_events)
