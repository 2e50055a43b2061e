"""The Train tab's settings: a form generated from the option registry, presets, advanced TOML.

Every field saves itself when the user finishes editing it; the steps per epoch and in total
update as repeats, epochs and batch size are typed. Layout and wiring only: the handlers are in
``train_actions.py``, the field list in ``train_form.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from . import fit_card_actions as fit_actions
from . import train_actions as actions
from .compat import event_listener, latest_only, save_events
from .projects_panel import REFRESH_SYMBOL
from .train_form import SECTIONS, STEP_FIELDS, Field, display_value, form_fields
from .wiring import PanelContext, feedback_line, wire

FIELDS_PER_ROW = 4
OPEN_SECTIONS = 2  # the first sections start open


@dataclass
class TrainPanel:
    fields: list[Field]
    components: dict[str, Any]
    extras: dict[str, Any]


def build_train_panel(ctx: PanelContext, tab: Any = None) -> TrainPanel:
    """The settings form; opening ``tab`` reloads it (the tag editor may have set keep_tokens)."""
    fields = form_fields()
    components: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    with gr.Row():
        extras["steps"] = gr.HTML(elem_id="tt_steps")
        extras["check"] = gr.HTML(elem_id="tt_check")
    extras.update(_fit_box())
    for index, (section, _names) in enumerate(SECTIONS):
        in_section = [f for f in fields if f.section == section]
        if not in_section:
            continue
        with gr.Accordion(section, open=index < OPEN_SECTIONS):
            for field in [f for f in in_section if f.kind == "checkpoint"]:
                with gr.Row():
                    components[field.name] = _component(field)
                    extras["refresh_models"] = gr.Button(REFRESH_SYMBOL, elem_id="tt_refresh_models", scale=0,
                                                         min_width=48)
                    extras["architecture"] = gr.HTML(elem_id="tt_architecture")
            others = [f for f in in_section if f.kind != "checkpoint"]
            for start in range(0, len(others), FIELDS_PER_ROW):
                with gr.Row():
                    for field in others[start:start + FIELDS_PER_ROW]:
                        components[field.name] = _component(field)
    extras.update(_advanced_box())
    extras.update(_preset_box())
    extras["runs"] = gr.HTML(elem_id="tt_runs")  # what Begin train (just below) would queue
    extras.setdefault("architecture", gr.HTML(visible=False))
    panel = TrainPanel(fields, components, extras)
    _wire(ctx, panel, tab)
    return panel


def _component(field: Field) -> Any:
    p = field.param
    common = {"label": field.label, "info": p.help, "elem_id": f"tt_opt_{p.name}"}
    value = display_value(field, {})
    if field.kind == "checkpoint":
        return gr.Dropdown(choices=[], value=None, allow_custom_value=True, scale=3, **common)
    if field.kind == "checkbox":
        return gr.Checkbox(value=value, **common)
    if field.kind == "dropdown":
        return gr.Dropdown(choices=field.choices, value=value, **common)
    if field.kind == "multiselect":
        return gr.Dropdown(choices=field.choices, value=value, multiselect=True, **common)
    if field.kind == "slider":
        return gr.Slider(minimum=p.min, maximum=p.max, step=field.step, value=value, **common)
    if field.kind == "number":
        return gr.Number(value=value, precision=0 if p.type is int else None, **common)
    return gr.Textbox(value=value, lines=3 if field.kind == "textarea" else 1, **common)


def _fit_box() -> dict[str, Any]:
    """Fit my card: the card's size, the two buttons, their result line and the undo record."""
    with gr.Row():
        card = gr.Number(label="Card memory (GiB)", value=fit_actions.default_card_gib(), elem_id="tt_card_gib",
                         info="Fit my card changes the settings so the VRAM estimate fits this size.")
        fit = gr.Button("Fit my card", elem_id="tt_fit_card")
        undo = gr.Button("Undo fit", elem_id="tt_undo_fit")
        feedback = feedback_line("tt_fit_feedback")
    record = gr.Textbox(visible=False, elem_id="tt_fit_undo")
    return {"card_gib": card, "fit_card": fit, "undo_fit": undo, "fit_feedback": feedback, "fit_undo": record}


def _advanced_box() -> dict[str, Any]:
    with gr.Accordion("Advanced: any other trainer option, as TOML", open=False, elem_id="tt_advanced_box"):
        text = gr.Textbox(label="Options", lines=8, elem_id="tt_advanced",
                          placeholder='noise_offset_type = "Original"\nmax_grad_norm = 0.5\nmin_timestep = 100')
        apply = gr.Button("Check and save", elem_id="tt_apply_advanced")
    return {"advanced": text, "apply_advanced": apply}


def _preset_box() -> dict[str, Any]:
    with gr.Accordion("Presets and other versions", open=False, elem_id="tt_presets_box"):
        with gr.Row():
            preset = gr.Dropdown(label="Preset", choices=[], elem_id="tt_preset", scale=3)
            refresh = gr.Button(REFRESH_SYMBOL, elem_id="tt_refresh_presets", scale=0, min_width=48)
            load = gr.Button("Load preset", elem_id="tt_load_preset")
            delete = gr.Button("Delete preset", elem_id="tt_delete_preset", variant="stop")
        with gr.Row():
            name = gr.Textbox(label="New preset name", max_lines=1, elem_id="tt_preset_name", scale=3)
            save = gr.Button("Save settings as preset", elem_id="tt_save_preset")
        with gr.Row():
            other = gr.Dropdown(label="Another version (project/version)", choices=[], elem_id="tt_other_version",
                                scale=3)
            copy = gr.Button("Copy its settings here", elem_id="tt_copy_settings")
    return {"presets": preset, "refresh_presets": refresh, "load_preset": load, "delete_preset": delete,
            "preset_name": name, "save_preset": save, "other_versions": other, "copy_settings": copy}


def _wire(ctx: PanelContext, panel: TrainPanel, tab: Any) -> None:
    services, sel, status = ctx.services, ctx.selection, ctx.status
    comps, ex = panel.components, panel.extras
    ordered = [comps[f.name] for f in panel.fields]
    view_out = ordered + [ex[name] for name in actions.VIEW_EXTRAS]
    applied_out = ordered + [ex[name] for name in actions.APPLIED_EXTRAS]
    # the reloads get what the page shows, so they leave alone a field typed into meanwhile
    view_in = [sel] + ordered + [ex["advanced"]]
    wire(sel.change, _viewer(services), view_in, view_out, status=status)
    if tab is not None:
        wire(tab.select, _viewer(services), view_in, view_out, status=status)
    for field in panel.fields:
        extra_out = [ex.get(n) or comps[n] for n in actions.extra_output_names(field.name)]
        for event, kwargs in save_events(field.kind):
            wire(event_listener(comps[field.name], event), _saver(services, field.name), [sel, comps[field.name]],
                 [ex["check"]] + extra_out + [comps[field.name]], status=status, show_progress=False,
                 listener_kwargs=kwargs)
    grid_inputs = [comps[f.name] for f in actions.grid_fields()]
    for component in grid_inputs:
        wire(component.change, lambda s, *typed: actions.runs(services, s, *typed), [sel] + grid_inputs,
             [ex["runs"]], status=status, show_progress=False, listener_kwargs=latest_only())
    step_inputs = [comps.get(name) for name in STEP_FIELDS]
    present = [c for c in step_inputs if c is not None]
    for component in present:
        wire(component.change, _stepper(services, step_inputs), [sel] + present, [ex["steps"]], status=status,
             show_progress=False, listener_kwargs=latest_only())
    if "refresh_models" in ex:
        wire(ex["refresh_models"].click, lambda c: actions.refresh_checkpoints(services, c), [comps["base_model"]],
             [comps["base_model"]], status=status)
    wire(ex["apply_advanced"].click, lambda s, t: actions.apply_advanced(services, s, t), [sel, ex["advanced"]],
         applied_out, status=status)
    fit_out = applied_out + [ex["fit_undo"]]
    wire(ex["fit_card"].click, lambda s, g: fit_actions.fit_card(services, s, g), [sel, ex["card_gib"]], fit_out,
         status=status, feedback=ex["fit_feedback"])
    wire(ex["undo_fit"].click, lambda s, r: fit_actions.undo_fit(services, s, r), [sel, ex["fit_undo"]], fit_out,
         status=status, feedback=ex["fit_feedback"])
    wire(ex["save_preset"].click, lambda s, n: actions.save_preset(services, s, n), [sel, ex["preset_name"]],
         [ex["presets"]], status=status)
    wire(ex["load_preset"].click, lambda s, n: actions.load_preset(services, s, n), [sel, ex["presets"]],
         applied_out, status=status)
    wire(ex["delete_preset"].click, lambda n: actions.delete_preset(services, n), [ex["presets"]],
         [ex["presets"]], status=status)
    wire(ex["refresh_presets"].click, lambda s: actions.refresh_lists(services, s), [sel],
         [ex["presets"], ex["other_versions"]], status=status)
    wire(ex["copy_settings"].click, lambda s, o: actions.copy_from_version(services, s, o),
         [sel, ex["other_versions"]], applied_out, status=status)


def _viewer(services):
    def view(selection, *shown):
        return actions.train_view(services, selection, shown)

    return view


def _saver(services, name: str):
    def save(selection, value):
        return actions.save_field(services, selection, name, value)

    save.__name__ = f"save_{name}"
    return save


def _stepper(services, step_inputs: list):
    """Steps for the present step fields; a missing one (no repeats field) counts as unset."""
    def steps(selection, *values):
        it = iter(values)
        full = [next(it) if c is not None else None for c in step_inputs]
        return actions.steps(services, selection, *full)

    return steps
