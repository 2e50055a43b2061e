"""``build_ui(services)``: the whole Train Tools tab as one ``gr.Blocks``.

The WebUI's tab and the standalone app both call it. Layout: the status line (every message and
error of every action), the project and version pickers, then the Dataset, Train and Results
tabs. The panels talk to each other only through the hidden ``project/version`` selection box.
"""

from __future__ import annotations

import gradio as gr

from .dataset_panel import build_dataset_panel
from .progress_panel import build_progress_panel
from .projects_panel import build_projects_panel
from .results_panel import build_results_panel
from .train_panel import build_train_panel
from .wiring import PanelContext

ROOT_ELEM_ID = "train_tools"


def build_ui(services) -> gr.Blocks:
    """The tab's Blocks for ``services`` (a ``services.Services``)."""
    with gr.Blocks(analytics_enabled=False, title="Train Tools") as demo:
        with gr.Column(elem_id=ROOT_ELEM_ID):
            status = gr.HTML(elem_id="tt_status", elem_classes=["tt-status"])
            gr.HTML(elem_id="tt_status_history")  # javascript/train_tools.js keeps every message here
            selection = gr.Textbox(visible=False, elem_id="tt_selection")
            ctx = PanelContext(services, selection, status, demo)
            build_projects_panel(ctx, demo)
            with gr.Tabs(elem_id="tt_tabs"):
                with gr.Tab("Dataset", elem_id="tt_tab_dataset"):
                    build_dataset_panel(ctx)
                with gr.Tab("Train", elem_id="tt_tab_train") as train_tab:
                    build_train_panel(ctx, train_tab)
                    build_progress_panel(ctx)  # Begin train, live progress and the queue
                with gr.Tab("Results", elem_id="tt_tab_results") as results_tab:
                    build_results_panel(ctx, results_tab)
    return demo
