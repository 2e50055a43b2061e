"""The project and version pickers with refresh, create, rename, duplicate, delete and restore.

Only layout and wiring live here; the handlers are in ``projects_actions.py``. Every change
writes the ``project/version`` selection box that the other panels watch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from . import projects_actions as actions
from .replies import Reply
from .wiring import PanelContext, wire

REFRESH_SYMBOL = "\U0001f504"


@dataclass
class ProjectsPanel:
    project: Any
    version: Any
    name: Any


def build_projects_panel(ctx: PanelContext, demo: gr.Blocks) -> ProjectsPanel:
    services = ctx.services
    initial = actions.picker_state(services)
    with gr.Row(elem_id="tt_picker_row"):
        project = gr.Dropdown(label="Project", elem_id="tt_project", scale=3, **_dropdown_args(initial[0]))
        version = gr.Dropdown(label="Version", elem_id="tt_version", scale=3, **_dropdown_args(initial[1]))
        refresh = gr.Button(REFRESH_SYMBOL, elem_id="tt_refresh", scale=0, min_width=48)
    with gr.Accordion("Manage projects and versions", open=True, elem_id="tt_manage"):
        name = gr.Textbox(
            label="Name", elem_id="tt_name", max_lines=1,
            placeholder="a name in any language, e.g. テスト; used by the buttons below",
        )
        with gr.Row():
            create_project = gr.Button("Create project", elem_id="tt_create_project", variant="primary")
            rename_project = gr.Button("Rename project", elem_id="tt_rename_project")
            delete_project = gr.Button("Delete project", elem_id="tt_delete_project", variant="stop")
        with gr.Row():
            create_version = gr.Button("Create version", elem_id="tt_create_version", variant="primary")
            rename_version = gr.Button("Rename version", elem_id="tt_rename_version")
            duplicate_version = gr.Button("Duplicate version", elem_id="tt_duplicate_version")
            delete_version = gr.Button("Delete version", elem_id="tt_delete_version", variant="stop")
            restore = gr.Button("Restore last deleted", elem_id="tt_restore")
    # The selection box starts empty: the page-load event fills it, which makes every panel load.

    outputs = [project, version, ctx.selection, name]
    both = [project, version]
    wiring: list[tuple[Any, Callable[..., Reply], list]] = [
        (demo.load, lambda: actions.load(services), []),
        (refresh.click, lambda p, v: actions.refresh(services, p, v), both),
        (project.input, lambda p: actions.select_project(services, p), [project]),
        (version.input, lambda p, v: actions.select_version(services, p, v), both),
        (create_project.click, lambda n: actions.create_project(services, n), [name]),
        (rename_project.click, lambda p, n: actions.rename_project(services, p, n), [project, name]),
        (delete_project.click, lambda p: actions.delete_project(services, p), [project]),
        (create_version.click, lambda p, n: actions.create_version(services, p, n), [project, name]),
        (rename_version.click, lambda p, v, n: actions.rename_version(services, p, v, n), both + [name]),
        (duplicate_version.click, lambda p, v, n: actions.duplicate_version(services, p, v, n), both + [name]),
        (delete_version.click, lambda p, v: actions.delete_version(services, p, v), both),
        (restore.click, lambda: actions.restore_last(services), []),
    ]
    for listener, handler, inputs in wiring:
        wire(listener, handler, inputs, outputs, status=ctx.status)
    return ProjectsPanel(project, version, name)


def _dropdown_args(update) -> dict:
    """Constructor arguments from a handler's ``choices`` update."""
    return {"choices": update.get("choices", []), "value": update.get("value")}
