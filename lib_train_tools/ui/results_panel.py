"""The Results tab: the runs of the chosen version, their LoRA files, preview grids and publishing.

Layout and wiring only; the handlers are in ``results_actions.py`` (the run picker and each
event for the chosen run), ``preview_actions.py`` and ``publish_actions.py``. Components are kept
in one dict under the names the handlers' output groups use. Opening the tab reads the runs again,
so a run that finished meanwhile shows up with what happened after it (published name, grid).

Element ids the browser tests rely on: ``tt_results_run`` (run picker), ``tt_results_refresh``,
``tt_results_checkpoints``, ``tt_pv_render``, ``tt_pv_grid``, ``tt_pv_cells``, ``tt_pub_name``,
``tt_pub_publish``, ``tt_pub_overwrite``, ``tt_pub_cancel``, ``tt_pub_result``, ``tt_pub_lora_text``.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..train.sampling import FALLBACK_SAMPLER
from . import preview_actions, publish_actions
from . import results_actions as actions
from .projects_panel import REFRESH_SYMBOL
from .wiring import PanelContext, feedback_line, wire


def build_results_panel(ctx: PanelContext, tab: Any = None) -> dict[str, Any]:
    """The tab's components by name; opening ``tab`` refreshes the runs."""
    c: dict[str, Any] = {}
    buttons: dict[str, Any] = {}
    with gr.Row():
        c["run"] = gr.Dropdown(label="Training run", choices=[], value=None, elem_id="tt_results_run", scale=3)
        buttons["refresh"] = gr.Button(REFRESH_SYMBOL, elem_id="tt_results_refresh", scale=0, min_width=48)
    c["runs"] = gr.HTML(elem_id="tt_results_runs")
    with gr.Row():
        with gr.Column(scale=3):
            c["summary"] = gr.HTML(elem_id="tt_results_summary")
        with gr.Column(scale=2):
            c["samples"] = gr.Gallery(label="Sample images made while training", elem_id="tt_results_samples",
                                      columns=4, height=300, object_fit="contain", allow_preview=True)
    c["checkpoints"] = gr.HTML(elem_id="tt_results_checkpoints")
    buttons["render"] = _preview_box(c)
    buttons.update(_publish_box(c))
    _wire(ctx, c, buttons, tab)
    return c


def _preview_box(c: dict[str, Any]) -> Any:
    with gr.Accordion("Preview grid: the epochs (rows) at several LoRA weights (columns)", open=True,
                      elem_id="tt_preview_box"):
        with gr.Row():
            c["prompt"] = gr.Textbox(label="Prompt", lines=2, elem_id="tt_pv_prompt", scale=3)
            c["negative"] = gr.Textbox(label="Negative prompt", lines=2, elem_id="tt_pv_negative", scale=2)
        with gr.Row():
            c["sampler"] = gr.Dropdown(label="Sampler", choices=preview_actions.SAMPLER_CHOICES, value=FALLBACK_SAMPLER,
                                       elem_id="tt_pv_sampler")
            c["steps"] = gr.Number(label="Steps", precision=0, elem_id="tt_pv_steps")
            c["cfg"] = gr.Number(label="CFG scale", elem_id="tt_pv_cfg")
            c["seeds"] = gr.Textbox(label="Seeds (-1: random)", max_lines=1, elem_id="tt_pv_seeds",
                                    info="several seeds: one column per seed inside each weight")
            c["width"] = gr.Number(label="Width", precision=0, elem_id="tt_pv_width")
            c["height"] = gr.Number(label="Height", precision=0, elem_id="tt_pv_height")
        with gr.Row():
            c["weights"] = gr.Textbox(label="LoRA weights", value=preview_actions.DEFAULT_WEIGHTS, max_lines=1,
                                      elem_id="tt_pv_weights", scale=2, info="0 shows the base model without the LoRA")
            c["epochs"] = gr.Dropdown(label="Epochs (LoRA files)", multiselect=True, choices=[], elem_id="tt_pv_epochs",
                                      scale=3)
        render = gr.Button("Render preview", variant="primary", elem_id="tt_pv_render")
        c["render_feedback"] = feedback_line("tt_pv_render_feedback")
        c["earlier"] = gr.Dropdown(label="Previews of this run (newest first)", choices=[], elem_id="tt_pv_earlier")
        c["folder"] = gr.Textbox(visible=False, elem_id="tt_pv_folder")
        c["info"] = gr.HTML(elem_id="tt_pv_info")
        c["grid"] = gr.Image(label="Preview grid", type="filepath", interactive=False, elem_id="tt_pv_grid")
        c["cells"] = gr.Gallery(label="Single images (click one to make it the card picture below)",
                                elem_id="tt_pv_cells", columns=6, height=300, object_fit="contain", allow_preview=True)
    return render


def _publish_box(c: dict[str, Any]) -> dict[str, Any]:
    with gr.Accordion("Publish to the LoRA folder", open=True, elem_id="tt_publish_box"):
        with gr.Row():
            c["checkpoint"] = gr.Dropdown(label="LoRA file", choices=[], elem_id="tt_pub_checkpoint")
            c["name"] = gr.Textbox(label="Name in the LoRA folder", max_lines=1, elem_id="tt_pub_name")
            c["activation"] = gr.Textbox(label="Activation text (trigger word)", max_lines=1,
                                         elem_id="tt_pub_activation")
            c["weight"] = gr.Number(label="Preferred weight", value=1.0, elem_id="tt_pub_weight")
        with gr.Row():
            with gr.Column(scale=3):
                c["notes"] = gr.Textbox(label="Notes", lines=3, elem_id="tt_pub_notes")
                c["image"] = gr.Dropdown(label="Card picture", choices=[publish_actions.NO_IMAGE],
                                         value=publish_actions.NO_IMAGE, elem_id="tt_pub_image")
            with gr.Column(scale=1):
                c["image_view"] = gr.Image(label="Card picture", type="filepath", interactive=False, height=200,
                                           elem_id="tt_pub_image_view")
        with gr.Row():
            publish = gr.Button("Publish", variant="primary", elem_id="tt_pub_publish")
            c["overwrite"] = gr.Button("Overwrite", variant="stop", visible=False, elem_id="tt_pub_overwrite")
            c["cancel"] = gr.Button("Cancel", visible=False, elem_id="tt_pub_cancel")
        c["publish_feedback"] = feedback_line("tt_pub_feedback")
        c["pending"] = gr.Textbox(visible=False, elem_id="tt_pub_pending")
        c["result"] = gr.HTML(elem_id="tt_pub_result")
        c["lora_text"] = gr.Textbox(label="Paste into a prompt", interactive=False, show_copy_button=True,
                                    elem_id="tt_pub_lora_text")
    return {"publish": publish}


def _wire(ctx: PanelContext, c: dict[str, Any], buttons: dict[str, Any], tab: Any) -> None:
    services, sel, status = ctx.services, ctx.selection, ctx.status

    def out(*groups) -> list:
        return [c[name] for group in groups for name in group]

    run_tail = out(actions.RUN_VIEW, preview_actions.EPOCHS, preview_actions.SHOWN, publish_actions.FORM)
    wire(sel.change, lambda s: actions.version_view(services, s), [sel],
         out(actions.RUN_VIEW, preview_actions.FORM, preview_actions.EPOCHS, preview_actions.SHOWN,
             publish_actions.FORM), status=status)
    wire(c["run"].input, lambda s, r: actions.run_view(services, s, r), [sel, c["run"]], run_tail, status=status)
    kept = [sel, c["run"], c["epochs"], c["folder"], c["checkpoint"]]
    for listener in [buttons["refresh"].click] + ([tab.select] if tab is not None else []):
        wire(listener, lambda *a: actions.refresh(services, *a), kept, run_tail, status=status)
    chosen = [sel, c["run"]]
    form = out(preview_actions.FORM, preview_actions.EPOCHS) + [c["checkpoint"]]
    wire(buttons["render"].click, lambda s, r, *a: actions.render_grid(services, s, r, *a[:-1], progress=a[-1]),
         chosen + form, out(preview_actions.SHOWN, publish_actions.PICTURE), status=status, progress=True,
         feedback=c["render_feedback"])
    wire(c["earlier"].input, lambda s, r, label: actions.show_earlier(services, s, r, label), chosen + [c["earlier"]],
         out(preview_actions.SHOWN), status=status)
    wire(c["cells"].select, lambda s, r, p, f, i, v: actions.pick_cell(services, s, r, p, f, i, v),
         chosen + [c["checkpoint"], c["folder"]], out(publish_actions.PICTURE), status=status, select=True)
    wire(c["checkpoint"].input, lambda s, r, p: actions.publish_checkpoint_changed(services, s, r, p),
         chosen + [c["checkpoint"]], [c["notes"]] + out(publish_actions.PICTURE), status=status)
    wire(c["image"].input, lambda s, r, i: actions.show_picture(services, s, r, i), chosen + [c["image"]],
         [c["image_view"]], status=status)
    publish_form = [c[n] for n in ("checkpoint", "name", "activation", "weight", "notes", "image")]
    confirm_out = out(publish_actions.CONFIRM) + [c["summary"]]
    wire(buttons["publish"].click, lambda s, r, *a: actions.publish(services, s, r, *a[:-1], pending=a[-1] or None),
         chosen + publish_form + [c["pending"]], confirm_out, status=status, feedback=c["publish_feedback"])
    wire(c["overwrite"].click, lambda s, r, *a: actions.publish(services, s, r, *a[:-1], confirmed=a[-1] or None),
         chosen + publish_form + [c["pending"]], confirm_out, status=status, feedback=c["publish_feedback"])
    wire(c["cancel"].click, lambda: publish_actions.cancel_overwrite(), [], out(publish_actions.CONFIRM),
         status=status)
