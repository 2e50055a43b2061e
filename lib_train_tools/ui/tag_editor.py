"""Layout and wiring of the tag editor (the handlers are in ``tag_actions.py``).

A tag table (click a row to choose its tag), the activation tag, prune and merge of the chosen
tags, a tag added to every caption, underscores to spaces, undo, and per-image caption editing
(click an image in the gallery, or pick its name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from . import tag_actions as actions
from .tag_actions import TAG_HEADERS
from .replies import Reply
from .wiring import PanelContext, feedback_line, wire


@dataclass
class TagEditor:
    table: Any
    chosen: Any
    activation: Any
    gallery_outputs: list  # gallery, its note, the image picker, the caption box

    @property
    def outputs(self) -> list:
        return [self.table, self.chosen, self.activation]


def build_tag_editor(ctx: PanelContext, gallery: Any, note: Any) -> TagEditor:
    """The editor below ``gallery`` (whose ``note`` it updates along with the captions)."""
    with gr.Accordion("Tags", open=True, elem_id="tt_tags"):
        with gr.Row():
            activation = gr.Textbox(
                label="Activation tag", elem_id="tt_activation", max_lines=1, scale=3,
                placeholder="a word that does not occur otherwise, e.g. mychar_v1",
            )
            set_activation = gr.Button("Set activation tag", elem_id="tt_set_activation", scale=1)
            undo = gr.Button("Undo", elem_id="tt_undo", scale=1)
        with gr.Row():
            with gr.Column(scale=3):
                search = gr.Textbox(label="Filter tags", elem_id="tt_tag_filter", max_lines=1)
                table = gr.Dataframe(
                    headers=list(TAG_HEADERS), datatype=["str", "number", "str"], interactive=False,
                    elem_id="tt_tag_table", label="Tags (click a row to choose the tag)", wrap=True,
                )
            with gr.Column(scale=2):
                chosen = gr.Dropdown(label="Chosen tags", multiselect=True, choices=[], elem_id="tt_chosen_tags")
                prune = gr.Button("Remove chosen tags from every caption", elem_id="tt_prune")
                target = gr.Textbox(label="Merge into", max_lines=1, elem_id="tt_merge_target")
                merge = gr.Button("Merge chosen tags into this tag", elem_id="tt_merge")
                new_tag = gr.Textbox(label="Tag to add", max_lines=1, elem_id="tt_new_tag")
                add = gr.Button("Add to every caption", elem_id="tt_add_tag")
                underscores = gr.Button("Underscores to spaces", elem_id="tt_underscores")
        with gr.Row():
            image_pick = gr.Dropdown(label="Image", choices=[], elem_id="tt_image_pick", scale=1)
            caption = gr.Textbox(label="Caption of the chosen image", lines=2, elem_id="tt_caption", scale=3)
            save = gr.Button("Save caption", elem_id="tt_save_caption", scale=1)
        feedback = feedback_line("tt_tags_feedback")
    editor = TagEditor(table, chosen, activation, [gallery, note, image_pick, caption])
    _wire(ctx, editor, dict(
        activation=activation, set_activation=set_activation, undo=undo, search=search, prune=prune,
        target=target, merge=merge, new_tag=new_tag, add=add, underscores=underscores, save=save,
        gallery=gallery, image_pick=image_pick, caption=caption, feedback=feedback,
    ))
    return editor


def _wire(ctx: PanelContext, editor: TagEditor, c: dict) -> None:
    services, sel, status = ctx.services, ctx.selection, ctx.status
    changed = editor.gallery_outputs + editor.outputs
    changes: list[tuple[Any, Callable[..., Reply], list]] = [
        (c["set_activation"].click, lambda s, t: actions.set_activation(services, s, t), [c["activation"]]),
        (c["activation"].submit, lambda s, t: actions.set_activation(services, s, t), [c["activation"]]),
        (c["prune"].click, lambda s, t: actions.prune(services, s, t), [editor.chosen]),
        (c["merge"].click, lambda s, t, g: actions.merge(services, s, t, g), [editor.chosen, c["target"]]),
        (c["add"].click, lambda s, t: actions.add_to_all(services, s, t), [c["new_tag"]]),
        (c["underscores"].click, lambda s: actions.underscores(services, s), []),
        (c["undo"].click, lambda s: actions.undo_last(services, s), []),
        (c["save"].click, lambda s, i, t: actions.edit(services, s, i, t), [c["image_pick"], c["caption"]]),
    ]
    for listener, handler, inputs in changes:
        wire(listener, handler, [sel] + inputs, changed, status=status, feedback=c["feedback"])
    wire(c["search"].change, lambda s, f: actions.filter_tags(services, s, f), [sel, c["search"]], [editor.table],
         status=status, show_progress=False)
    wire(editor.table.select, lambda s, f, cur, i, v: actions.pick_from_table(services, s, f, cur, i, v),
         [sel, c["search"], editor.chosen], [editor.chosen], status=status, select=True, show_progress=False)
    wire(c["gallery"].select, lambda s, i, v: actions.pick_from_gallery(services, s, i, v), [sel],
         [c["image_pick"], c["caption"]], status=status, select=True, show_progress=False)
    wire(c["image_pick"].input, lambda s, i: actions.pick_image(services, s, i), [sel, c["image_pick"]],
         [c["caption"]], status=status, show_progress=False)
