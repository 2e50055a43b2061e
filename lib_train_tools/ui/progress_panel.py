"""The queue and live progress of training jobs, with the "Begin train" button (coming).

Placeholder: another change adds the job queue's panel here. ``build_progress_panel`` is called
by ``app.py`` below the Train settings and gets the same ``PanelContext`` as every panel (the
services, the ``project/version`` selection box, the status line and the page's Blocks); use
``compat.poll(ctx.demo, ...)`` for live updates so that both gradio versions work.
"""

from __future__ import annotations

import gradio as gr

from .wiring import PanelContext


def build_progress_panel(ctx: PanelContext) -> None:
    available = ctx.services.queue is not None
    text = ("Training from the tab is coming: the queue is installed but its panel is not built yet."
            if available else
            "Training from the tab is coming. Until then, train with `python -m lib_train_tools.train` "
            "(see the README).")
    gr.Markdown(text, elem_id="tt_progress_placeholder")
