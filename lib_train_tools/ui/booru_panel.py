"""Layout and wiring of the Dataset tab's "Import from a booru" box (handlers in ``booru_actions.py``).

Site, tags, how many images, ratings and a minimum size; optional credentials and address under
"Account and address". *Preview* lists what *Import* would fetch; *Import* downloads it into the
uploads with progress and refreshes the gallery (``gallery_outputs``: the tag editor's gallery,
note, picker and caption, as the upload updates them).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from . import booru_actions as actions
from .wiring import PanelContext, feedback_line, wire

TAGS_HELP = "as you would type them on the site, e.g. hatsune_miku solo (anonymous Danbooru: at most 2 tags)"


def build_booru_panel(ctx: PanelContext, gallery_outputs: list[Any]) -> None:
    """The accordion, with Preview wired to its table and Import to its report and ``gallery_outputs``."""
    with gr.Accordion("Import from a booru", open=False, elem_id="tt_booru"):
        with gr.Row():
            site = gr.Dropdown(label="Site", choices=actions.SITE_CHOICES, value=actions.SITE_CHOICES[0],
                               elem_id="tt_booru_site", scale=1)
            tags = gr.Textbox(label="Tags", placeholder=TAGS_HELP, max_lines=1, elem_id="tt_booru_tags", scale=3)
        with gr.Row():
            count = gr.Number(label="Images", value=actions.DEFAULT_COUNT, precision=0, elem_id="tt_booru_count")
            ratings = gr.CheckboxGroup(label="Ratings", choices=actions.RATING_CHOICES,
                                       value=actions.DEFAULT_RATINGS, info="none ticked: every rating",
                                       elem_id="tt_booru_ratings")
            min_side = gr.Number(label="Minimum side (px, 0: any)", value=512, precision=0,
                                 elem_id="tt_booru_min_side")
        with gr.Accordion("Account and address (optional)", open=False, elem_id="tt_booru_account"):
            with gr.Row():
                user = gr.Textbox(label="Login (Danbooru) or user id (Gelbooru)", max_lines=1,
                                  elem_id="tt_booru_user")
                api_key = gr.Textbox(label="API key", type="password", max_lines=1, elem_id="tt_booru_key")
                address = gr.Textbox(label="Address (empty: the site's own)", max_lines=1,
                                     placeholder="https://danbooru.donmai.us", elem_id="tt_booru_address")
        with gr.Row():
            preview = gr.Button("Preview", elem_id="tt_booru_preview")
            run = gr.Button("Import", variant="primary", elem_id="tt_booru_import")
        feedback = feedback_line("tt_booru_feedback")
        report = gr.HTML(elem_id="tt_booru_report")

    services, sel, status = ctx.services, ctx.selection, ctx.status
    form = [sel, site, tags, count, ratings, min_side, user, api_key, address]
    wire(preview.click, lambda *a: actions.preview_import(services, *a), form, [report], status=status,
         feedback=feedback)
    wire(run.click, lambda *a: actions.run_import(services, *a[:-1], progress=a[-1]), form,
         [report] + list(gallery_outputs), status=status, progress=True, feedback=feedback)
