"""The training part of the Train tab: Begin train, Add to queue, Cancel, live progress and the queue.

Below the settings: the buttons; the shown job's progress bar (step/total, epoch, loss, it/s, time
left) or how it ended; the loss chart (per step and smoothed) next to the samples made so far; the
last lines of its log; and the queue of every job, where a click on a row shows that job and
*Move up/down*, *Remove* and *Resume* act on it. The page polls the queue about once a second
(``compat.poll``), so a reloaded page or a restarted app shows the same state. Layout and wiring
only: the handlers are in ``progress_actions.py`` and ``queue_actions.py``.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from . import progress_actions as actions
from . import queue_actions as queue
from .compat import event_fn, poll, settings_slot
from .loss_chart import loss_chart_svg
from .progress_view import progress_html
from .queue_actions import QUEUE_HEADERS
from .wiring import PanelContext, feedback_line, run_handler, wire


def build_progress_panel(ctx: PanelContext) -> dict[str, Any]:
    c: dict[str, Any] = {}
    gr.HTML("<h3>Training</h3>", elem_id="tt_training_title")
    with gr.Row():
        c["begin"] = gr.Button("Begin train", variant="primary", elem_id="tt_begin_train")
        c["add"] = gr.Button("Add to queue", elem_id="tt_add_to_queue")
        c["cancel"] = gr.Button("Cancel", variant="stop", elem_id="tt_cancel")
    c["train_feedback"] = feedback_line("tt_train_feedback")
    c["progress"] = gr.HTML(progress_html(None, None), elem_id="tt_progress")
    with gr.Row():
        with gr.Column(scale=3):
            c["chart"] = gr.HTML(loss_chart_svg([]), elem_id="tt_loss_chart")
        with gr.Column(scale=2):
            c["samples"] = gr.Gallery(label="Samples", elem_id="tt_samples", columns=3, height=240,
                                      object_fit="contain", allow_preview=True)
    with gr.Accordion("Log (last lines)", open=True, elem_id="tt_log_box"):
        c["log"] = gr.HTML(elem_id="tt_log")
    c["queue"] = gr.Dataframe(headers=list(QUEUE_HEADERS), datatype=["str"] * len(QUEUE_HEADERS),
                              interactive=False, wrap=True, elem_id="tt_queue",
                              label="Queue and past jobs (click a row to show that job)")
    with gr.Row():
        c["up"] = gr.Button("Move up", elem_id="tt_move_up")
        c["down"] = gr.Button("Move down", elem_id="tt_move_down")
        c["remove"] = gr.Button("Remove", elem_id="tt_remove_job")
        c["resume"] = gr.Button("Resume", elem_id="tt_resume_job", visible=False)
        c["running"] = gr.Button("Show the running job", elem_id="tt_show_running")
    c["queue_feedback"] = feedback_line("tt_queue_feedback")
    c["job"] = gr.Textbox(visible=False, elem_id="tt_job")  # the clicked job's id ("": the default)
    c["keys"] = gr.Textbox(visible=False, elem_id="tt_progress_keys")  # what the page has (poll)
    _wire(ctx, c)
    return c


def _wire(ctx: PanelContext, c: dict[str, Any]) -> None:
    services, sel, status = ctx.services, ctx.selection, ctx.status
    job = c["job"]
    poll_in = [job, sel, c["keys"]]
    poll_out = [c[name] for name in actions.POLL_OUTPUTS]
    tick = event_fn(_poller(services, len(poll_out)), len(poll_in))

    def refresh(event: Any) -> None:
        """Show the outcome of an action at once instead of at the next poll."""
        event.then(tick, inputs=poll_in, outputs=poll_out, show_progress="hidden")

    for button, handler in ((c["begin"], actions.begin_train), (c["add"], actions.add_to_queue)):
        # after any save of a field left just before the click (they share the settings' queue slot)
        refresh(wire(button.click, _with(services, handler), [sel], [job], status=status,
                     listener_kwargs=settings_slot(), feedback=c["train_feedback"]))
    refresh(wire(c["cancel"].click, _with(services, actions.cancel_job), [job, sel], [job], status=status,
                 feedback=c["train_feedback"]))
    queue_feedback = c["queue_feedback"]
    for button, delta in ((c["up"], -1), (c["down"], 1)):
        refresh(wire(button.click, _mover(services, delta), [job, sel], [job], status=status, feedback=queue_feedback))
    refresh(wire(c["remove"].click, _with(services, queue.remove_job), [job, sel], [job], status=status,
                 feedback=queue_feedback))
    refresh(wire(c["resume"].click, _with(services, queue.resume_job), [job, sel], [job], status=status,
                 feedback=queue_feedback))
    refresh(wire(c["running"].click, _with(services, queue.show_running), [sel], [job], status=status,
                 feedback=queue_feedback))
    refresh(wire(c["queue"].select, lambda k, i, v: queue.select_row(actions.table_ids(k), i), [c["keys"]], [job],
                 status=status, select=True, show_progress=False))
    refresh(wire(sel.change, lambda s: queue.forget_choice(), [sel], [job], status=status, show_progress=False))
    if ctx.demo is not None:
        poll(ctx.demo, tick, poll_in, poll_out, actions.POLL_SECONDS)


def _poller(services, n_outputs: int):
    """The poll as gradio calls it: no status line (it would flicker every second); a failure
    shows in the progress box instead."""

    def tick(selected, selection, keys):
        out = run_handler(lambda j, s, k: actions.poll(services, j, s, k), (selected, selection, keys), n_outputs)
        if out[0] is not None and "tt-error" in str(out[0]):
            out[1] = out[0]
        return out[1:]

    tick.__name__ = "poll"
    return tick


def _with(services, handler):
    def call(*args):
        return handler(services, *args)

    call.__name__ = handler.__name__
    return call


def _mover(services, delta: int):
    def move(selected, selection):
        return queue.move_job(services, selected, selection, delta)

    move.__name__ = "move_job"
    return move
