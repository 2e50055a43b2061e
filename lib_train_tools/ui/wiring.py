"""Thin glue between gradio events and plain handlers, with errors shown in the page.

``wire(listener, handler, inputs, outputs, status=...)`` registers ``handler`` (a plain function
of the input values that returns a ``Reply``) on an event. The status line is always the first
output: it shows the reply's notice, or the error's message when the handler raises, in which
case every other output is left unchanged. ``select=True`` passes the select event's index and
value as two extra arguments; ``progress=True`` passes a ``progress(done, total, name)``
callback last.

The status line sits at the top of the tab, often out of view. An action started from a button
further down passes ``feedback=`` (a `feedback_line` placed next to that button): its result then
also shows there, and as a transient notice in the corner of the page (gradio's ``gr.Info`` /
``gr.Warning``), so what happened is visible where the person is looking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from .compat import event_fn, js_kwargs, progress_callback, to_gradio
from .replies import Notice, Reply, error_notice, notice_html


@dataclass
class PanelContext:
    """What every panel gets: the services, the selection box (``project/version``) and the status line."""

    services: Any
    selection: Any  # hidden gr.Textbox holding "<project>/<version>" (empty when none)
    status: Any  # gr.HTML status line
    demo: Any = None  # the page's gr.Blocks (for load events and compat.poll)


def run_handler(handler: Callable[..., Reply], args: tuple, n_outputs: int) -> list:
    """Call ``handler``; the status HTML first, then one gradio value per output."""
    notice, values = handle(handler, args, n_outputs)
    return [gr.update() if notice is None else notice_html(notice)] + values


def handle(handler: Callable[..., Reply], args: tuple, n_outputs: int) -> tuple[Notice | None, list]:
    """Call ``handler``: its notice (an error notice when it raised) and one gradio value per output."""
    try:
        reply = handler(*args)
    except Exception as exc:  # every failure reaches the page (and the log)
        return error_notice(exc), [gr.update()] * n_outputs
    if not isinstance(reply, Reply):
        raise TypeError(f"{getattr(handler, '__name__', handler)} returned {type(reply).__name__}, not a Reply")
    if len(reply.values) != n_outputs:
        raise ValueError(f"{handler.__name__} returned {len(reply.values)} values for {n_outputs} outputs")
    return reply.notice, [to_gradio(v) for v in reply.values]


def feedback_line(elem_id: str) -> Any:
    """The place next to a button where the result of its action shows (``wire(feedback=...)``)."""
    return gr.HTML(elem_id=elem_id, elem_classes=["tt-feedback"])


def announce(notice: Notice) -> None:
    """Show ``notice`` as a transient notice in the page's corner (both gradio versions have these)."""
    show = gr.Info if notice.kind in ("ok", "info") else gr.Warning
    try:
        show(notice.text)
    except Exception:  # outside a page's event (tests, scripts) there is nowhere to show it
        pass


def wire(
    listener: Callable,
    handler: Callable[..., Reply],
    inputs: list,
    outputs: list,
    *,
    status: Any,
    select: bool = False,
    progress: bool = False,
    js: str | None = None,
    show_progress: bool = True,
    listener_kwargs: dict | None = None,
    feedback: Any = None,
) -> Any:
    """Register ``handler`` on ``listener`` (e.g. ``button.click``); returns the event.

    ``feedback``: a `feedback_line` next to the button, where the result shows too (the line is
    emptied when the action's reply has no notice)."""
    n_in = len(inputs)

    def call(*args: Any) -> list:
        values = list(args[:n_in])
        rest = list(args[n_in:])
        if select:
            evt = rest.pop(0)
            values += [getattr(evt, "index", None), getattr(evt, "value", None)]
        if progress:
            values.append(progress_callback(rest.pop(0) if rest else None))
        notice, out = handle(handler, tuple(values), len(outputs))
        line = gr.update() if notice is None else notice_html(notice)
        if feedback is None:
            return [line] + out
        if notice is not None:
            announce(notice)
        return [line, "" if notice is None else line] + out

    call.__name__ = getattr(handler, "__name__", "handler")
    fn = event_fn(call, n_in, select=select, progress=progress)
    kwargs = dict(js_kwargs(js), **(listener_kwargs or {}))
    if not show_progress:
        kwargs["show_progress"] = "hidden"
    extra = [] if feedback is None else [feedback]
    return listener(fn, inputs=inputs, outputs=[status] + extra + outputs, **kwargs)
