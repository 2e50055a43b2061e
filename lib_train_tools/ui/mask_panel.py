"""The Dataset tab's "Loss masks" accordion: import masks, and see the chosen image with its mask.

Layout and wiring only; the handlers are in ``mask_actions.py``, the file rules in
``datasets/mask_files.py``. The import is an upload button, not a ``gr.File``: gradio 3.41 drops a
``gr.File``'s upload event when the page re-renders during the upload (see
``javascript/train_tools.js``). A click on a gallery image shows it here with its mask over it, the
same click the tag editor uses to choose the image's caption.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from . import mask_actions as actions
from .compat import file_paths
from .projects_panel import REFRESH_SYMBOL
from .wiring import PanelContext, feedback_line, wire

MASK_FILE_TYPES = [".png", ".webp", ".jpg", ".jpeg", ".zip"]
HELP = (
    "A mask says where an image trains when **masked_loss** (or **alpha_mask**) is on: white trains, black is "
    "ignored, grey weighs in between. An image's own transparency is its mask. For the uploaded image `cat.png` "
    "the mask may be called `cat.png` (e.g. in a zip's `masks/` folder), `cat.mask.png`, `cat_mask.png` or "
    "`cat-mask.png` (PNG, WebP or JPEG, or a .zip of them); it is stored as greyscale `cat.mask.png`, and a mask "
    "of another size but the same shape is resized to its image. Preprocess afterwards: each training image "
    "gets its mask, cut and flipped like the image."
)


def build_mask_panel(ctx: PanelContext, gallery: Any) -> None:
    """The accordion; ``gallery`` is the Dataset tab's gallery, whose clicks choose the image shown."""
    with gr.Accordion("Loss masks", open=False, elem_id="tt_masks"):
        gr.Markdown(HELP, elem_id="tt_mask_help")
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Row():
                    summary = gr.HTML(elem_id="tt_mask_summary")
                    recount = gr.Button(REFRESH_SYMBOL, elem_id="tt_mask_recount", scale=0, min_width=48)
                files = gr.UploadButton("Import masks…", file_count="multiple", file_types=MASK_FILE_TYPES,
                                        elem_id="tt_mask_upload")
                replace = gr.Checkbox(label="Replace existing masks (the old ones are set aside, not deleted)",
                                      value=False, elem_id="tt_mask_replace")
                feedback = feedback_line("tt_mask_feedback")
                report = gr.HTML(elem_id="tt_mask_report")
            with gr.Column(scale=3):
                view = gr.Image(label="Chosen image; red: ignored by the loss", type="pil", interactive=False,
                                height=360, elem_id="tt_mask_view")
                note = gr.HTML(elem_id="tt_mask_view_note")
    services, sel, status = ctx.services, ctx.selection, ctx.status
    wire(sel.change, lambda s: actions.mask_view(services, s), [sel], [view, note, summary], status=status)
    wire(recount.click, lambda s: actions.refresh_summary(services, s), [sel], [summary], status=status)
    wire(files.upload, lambda s, f, r, p: actions.import_mask_files(services, s, file_paths(f), r, p),
         [sel, files, replace], [report, summary], status=status, progress=True, feedback=feedback)
    wire(gallery.select, lambda s, i, v: actions.show_mask(services, s, i, v), [sel], [view, note],
         status=status, select=True, show_progress=False)
