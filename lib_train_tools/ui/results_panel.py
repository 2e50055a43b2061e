"""Runs, epoch x weight preview grids and publishing (coming).

Placeholder: another change adds the results panel here. ``build_results_panel`` is called by
``app.py`` inside the "Results" tab with the same ``PanelContext`` as every panel.
"""

from __future__ import annotations

import gradio as gr

from .wiring import PanelContext


def build_results_panel(ctx: PanelContext) -> None:
    gr.Markdown("The results of training runs (previews of every epoch, publishing to the LoRA folder) "
                "are coming.", elem_id="tt_results_placeholder")
