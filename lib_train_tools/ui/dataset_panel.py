"""The Dataset tab: gallery, upload, preprocessing, auto-tagging, duplicates and the tag editor.

Layout and wiring only; handlers live in ``dataset_actions.py`` and ``tag_actions.py``. Upload,
preprocessing, auto-tagging and the duplicate search report progress and run in the queue, so
the rest of the page stays usable meanwhile. The note above the gallery flags small images and
over-long captions; "Drop small images" sets the small uploads aside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..datasets.captions import CAPTION_POLICIES
from ..datasets.preprocess import CROP_ANCHORS, OUTPUT_FORMATS, RESIZE_MODES, PreprocessOptions
from ..datasets.taggers import WD14Options
from . import dataset_actions as actions
from .booru_panel import build_booru_panel
from .compat import file_paths
from .mask_panel import build_mask_panel
from .projects_panel import REFRESH_SYMBOL
from .tag_editor import build_tag_editor
from .wiring import PanelContext, feedback_line, wire

DROP_HINT = "Drop images, .txt captions and .zip archives here, or"
POLICY_HELP = ("How an uploaded caption and generated tags combine: keep = the caption when there is one, "
               "else the tags; ignore = only the tags; prepend / append = both, tags first / last")


def build_dataset_panel(ctx: PanelContext) -> None:
    with gr.Row():
        with gr.Column(scale=3):
            note = gr.HTML(elem_id="tt_gallery_note")  # counts, then the flags (small images, long captions)
            gallery = gr.Gallery(label="Training images", elem_id="tt_gallery", columns=6, height=420,
                                 object_fit="contain", allow_preview=True)
            drop_small = gr.Button("Drop small images", elem_id="tt_drop_small")
            small_feedback = feedback_line("tt_drop_small_feedback")
        with gr.Column(scale=2):
            # A drop zone around an upload button, not a gr.File: see javascript/train_tools.js for why
            with gr.Column(elem_id="tt_upload_zone", elem_classes=["tt-drop-zone"]):
                gr.HTML(f"<p>{DROP_HINT}</p>", elem_id="tt_upload_hint")
                files = gr.UploadButton("Choose files…", file_count="multiple", elem_id="tt_upload")
            upload_feedback = feedback_line("tt_upload_feedback")
            replace = gr.Checkbox(label="Replace the current images (they are set aside, not deleted)",
                                  value=False, elem_id="tt_replace")
            report = gr.HTML(elem_id="tt_report")
    form = _preprocess_form()
    tagger, tag_options, refresh_taggers, autotag, autotag_feedback, download = _autotag_form(ctx)
    duplicates, drop_choice, find, drop, duplicates_feedback = _duplicates_form()
    build_mask_panel(ctx, gallery)  # loss masks: import, and the chosen image with its mask
    editor = build_tag_editor(ctx, gallery, note)
    build_booru_panel(ctx, editor.gallery_outputs)  # import by tags from Danbooru, Gelbooru or Safebooru

    services, sel, status = ctx.services, ctx.selection, ctx.status
    g_out, t_out = editor.gallery_outputs, editor.outputs
    wire(sel.change, lambda s: actions.dataset_view(services, s), [sel],
         g_out + t_out + [report, duplicates, drop_choice], status=status)
    wire(files.upload, lambda s, f, r, p: actions.upload_files(services, s, file_paths(f), r, p),
         [sel, files, replace], [report] + g_out, status=status, progress=True, feedback=upload_feedback)
    wire(form.button.click, lambda s, *a: actions.run_preprocess(services, s, *a[:-1], progress=a[-1]),
         [sel] + form.inputs, [report] + g_out + t_out, status=status, progress=True, feedback=form.feedback)
    wire(refresh_taggers.click, lambda: actions.tagger_choices(services), [], [tagger], status=status)
    wire(download.button.click, lambda name, p: actions.download_known_tagger(services, name, p), [download.choice],
         [tagger], status=status, progress=True, feedback=download.feedback)
    wire(autotag.click,
         lambda s, t, th, ct, r, cf, b, *a: actions.run_autotag(
             services, s, t, th, *a[:-1], progress=a[-1], character_threshold=ct, include_rating=r,
             character_tags_first=cf, batch_size=b),
         [sel, tagger] + tag_options + form.inputs, [report] + g_out + t_out, status=status, progress=True,
         feedback=autotag_feedback)
    wire(find.click, lambda s, p: actions.find_duplicate_groups(services, s, p), [sel],
         [duplicates, drop_choice], status=status, progress=True, feedback=duplicates_feedback)
    wire(drop.click, lambda s, names: actions.drop_chosen(services, s, names), [sel, drop_choice],
         [duplicates, drop_choice] + g_out, status=status, feedback=duplicates_feedback)
    wire(drop_small.click, lambda s: actions.drop_small(services, s), [sel],
         [report, duplicates, drop_choice] + g_out, status=status, feedback=small_feedback)


@dataclass
class _PreprocessForm:
    inputs: list  # in the order dataset_actions.preprocess_options takes them
    button: Any
    feedback: Any


def _preprocess_form() -> _PreprocessForm:
    """Fields in the order ``dataset_actions.preprocess_options`` takes them; defaults from the library."""
    d = PreprocessOptions()
    with gr.Accordion("Preprocessing", open=True, elem_id="tt_preprocessing"):
        with gr.Row():
            width = gr.Number(label="Width", value=d.width, precision=0, elem_id="tt_pp_width")
            height = gr.Number(label="Height", value=d.height, precision=0, elem_id="tt_pp_height")
            mode = gr.Dropdown(label="Resize", choices=list(RESIZE_MODES), value=d.mode, elem_id="tt_pp_mode",
                               info="keep_aspect: shrink to the target area (buckets do the rest); crop: exact size")
            anchor = gr.Dropdown(label="Crop around", choices=list(CROP_ANCHORS), value=d.crop_anchor,
                                 elem_id="tt_pp_anchor")
        with gr.Row():
            split = gr.Number(label="Split images longer than this ratio (0: never)", value=d.split_ratio or 0,
                              elem_id="tt_pp_split")
            flip = gr.Checkbox(label="Add flipped copies", value=d.flip_copies, elem_id="tt_pp_flip")
            policy = gr.Dropdown(label="Captions", choices=list(CAPTION_POLICIES), value=d.caption_policy,
                                 info=POLICY_HELP, elem_id="tt_pp_policy")
            fmt = gr.Dropdown(label="Format", choices=list(OUTPUT_FORMATS), value=d.output_format,
                              elem_id="tt_pp_format")
        button = gr.Button("Preprocess", variant="primary", elem_id="tt_preprocess")
        feedback = feedback_line("tt_preprocess_feedback")
    return _PreprocessForm([width, height, mode, anchor, split, flip, policy, fmt], button, feedback)


def _autotag_form(ctx: PanelContext):
    """Tagger, its options (in ``run_autotag``'s order: general and character thresholds, rating,
    character tags first, batch size), the onnxruntime note with its install button (wired here)."""
    from ..datasets.taggers import WD14_MAX_BATCH, WD14_SUGGESTED_CHARACTER_THRESHOLD
    from . import onnxruntime_actions

    names = [t.name for t in actions.available_taggers(ctx.services)]
    d = WD14Options()
    with gr.Accordion("Auto-tag", open=False, elem_id="tt_autotag"):
        with gr.Row():
            tagger = gr.Dropdown(label="Tagger", choices=names, value=names[0] if names else None,
                                 elem_id="tt_tagger", scale=3)
            refresh = gr.Button(REFRESH_SYMBOL, elem_id="tt_refresh_taggers", scale=0, min_width=48)
            threshold = gr.Slider(label="General tags threshold", minimum=0.05, maximum=0.95, step=0.01,
                                  value=d.threshold, elem_id="tt_threshold", scale=3)
            character = gr.Slider(label="Character tags threshold (WD14)", minimum=0.05, maximum=0.95, step=0.01,
                                  value=WD14_SUGGESTED_CHARACTER_THRESHOLD, elem_id="tt_character_threshold", scale=3)
        with gr.Row():
            rating = gr.Checkbox(label="Add the rating tag (general, sensitive, questionable or explicit)",
                                 value=d.include_rating, elem_id="tt_include_rating")
            character_first = gr.Checkbox(label="Character tags first", value=d.character_tags_first,
                                          elem_id="tt_character_tags_first")
            batch = gr.Slider(label="Images per batch (WD14)", minimum=1, maximum=WD14_MAX_BATCH, step=1,
                              value=d.batch_size, elem_id="tt_tagger_batch")
        note_html, install_visible = onnxruntime_actions.onnxruntime_note(ctx.services)
        note = gr.HTML(note_html, elem_id="tt_onnxruntime_note")
        install = gr.Button("Install onnxruntime", elem_id="tt_install_onnxruntime",
                            visible=bool(install_visible.get("visible")))
        install_feedback = feedback_line("tt_install_onnxruntime_feedback")
        button = gr.Button("Auto-tag, then preprocess", elem_id="tt_run_autotag")
        feedback = feedback_line("tt_autotag_feedback")
        download = _download_tagger_form(actions.tagger_roots(ctx.services)[0])
    wire(install.click, lambda p: onnxruntime_actions.install_onnxruntime(ctx.services, p), [], [note, install],
         status=ctx.status, progress=True, feedback=install_feedback)
    return tagger, [threshold, character, rating, character_first, batch], refresh, button, feedback, download


@dataclass
class _DownloadTaggerForm:
    choice: Any
    button: Any
    feedback: Any


def _download_tagger_form(folder) -> _DownloadTaggerForm:
    """A WD14 tagger from the Hugging Face hub into the taggers ``folder`` (once; then it is listed above)."""
    known = actions.downloadable_taggers()
    with gr.Row():
        choice = gr.Dropdown(label="Download a WD14 tagger", choices=known, value=known[0],
                             elem_id="tt_download_tagger_choice", scale=3,
                             info="from the Hugging Face hub, once; offline, put model.onnx and "
                                  f"selected_tags.csv in a folder under {folder}")
        button = gr.Button("Download tagger", elem_id="tt_download_tagger", scale=1)
    return _DownloadTaggerForm(choice, button, feedback_line("tt_download_tagger_feedback"))


def _duplicates_form():
    with gr.Accordion("Duplicates", open=False, elem_id="tt_duplicates"):
        find = gr.Button("Find duplicates", elem_id="tt_find_duplicates")
        groups = gr.HTML(elem_id="tt_duplicate_groups")
        choice = gr.Dropdown(label="Files to drop from the dataset", multiselect=True, choices=[],
                             elem_id="tt_drop_choice")
        drop = gr.Button("Drop chosen files", elem_id="tt_drop", variant="stop")
        feedback = feedback_line("tt_duplicates_feedback")
    return groups, choice, find, drop, feedback
