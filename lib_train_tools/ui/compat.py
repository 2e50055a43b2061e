"""The few places where gradio 3.41 (AUTOMATIC1111) and gradio 4.40 (Forge) differ.

Everything else in ``ui/`` uses only what both versions share (``gr.update``, ``gr.Progress``,
``gr.SelectData``, the components' common arguments). Differences handled here:

- event JavaScript is ``_js=`` in gradio 3 and ``js=`` in gradio 4;
- ``gr.File`` gives tempfile wrappers (with ``.name``) in gradio 3 and path strings in gradio 4;
- the queue's concurrency is ``concurrency_count`` (one pool of workers) in gradio 3 and a
  per-event ``default_concurrency_limit`` in gradio 4;
- page-wide JavaScript: gradio 4 takes ``<script>`` tags in ``head``; gradio 3 has no ``head``,
  so the script runs from a page-load event;
- polling: ``gr.Timer`` in gradio 4.40; in gradio 3 ``every=`` (which repeats a call with the
  inputs of the page load) ticks a hidden clock whose ``change`` event makes the call;
- gradio 4.40 copies every file it serves into its cache; gradio 3 serves temporary copies as
  well, but both need the output root in ``allowed_paths`` for direct links;
- ``gr.Number`` has a ``blur`` listener in gradio 3 only; gradio 4.40's page fires ``blur`` too,
  so ``event_listener`` binds the generic one (fields save on the same events in both);
- ``gr.Dataframe`` in gradio 3 drops the headers of an empty list of rows, so tables go out as
  pandas frames (``to_gradio``);
- both versions find ``gr.Progress`` and ``gr.SelectData`` parameters by inspecting the event
  function's signature, so wrappers get an explicit one (``event_fn``);
- the FastAPI app behind a launched page (``served_app``): both versions' ``launch`` return it
  first and keep it as ``Blocks.server_app``; gradio 4's ``Blocks.app`` is the same app, but
  gradio 3's is another one, made before launch and never served.
"""

from __future__ import annotations

import inspect
import os
import types
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr

from .replies import NO_CHANGE, Table, Update

GRADIO_MAJOR = int(gr.__version__.split(".")[0])
IS_GRADIO_4 = GRADIO_MAJOR >= 4


def js_kwargs(js: str | None) -> dict[str, Any]:
    """Keyword arguments that attach ``js`` (a JS function as text) to an event listener."""
    if not js:
        return {}
    return {"js": js} if IS_GRADIO_4 else {"_js": js}


def file_paths(value: Any) -> list[str]:
    """Paths of the files a ``gr.File`` handed to an event, in either version's format."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    paths = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            paths.append(str(item))
        elif isinstance(item, dict) and (item.get("path") or item.get("name")):
            paths.append(str(item.get("path") or item.get("name")))
        elif getattr(item, "path", None):
            paths.append(str(item.path))
        elif getattr(item, "name", None):
            paths.append(str(item.name))
    return paths


def to_gradio(value: Any) -> Any:
    """A handler's plain output value as gradio expects it."""
    if value is NO_CHANGE:
        return gr.update()
    if isinstance(value, Update):
        return gr.update(**{k: to_gradio(v) for k, v in value.changes.items()})
    if isinstance(value, Table):
        return _dataframe(value)
    return value


def _dataframe(table: Table) -> Any:
    """A pandas frame: gradio 3 drops the headers of an empty list of rows."""
    import pandas

    return pandas.DataFrame([list(row) for row in table.rows], columns=list(table.headers))


def event_fn(call: Callable[..., Any], n_inputs: int, *, select: bool = False, progress: bool = False) -> Callable:
    """``call`` behind a signature gradio understands: ``n_inputs`` values, then the select
    event (``evt: gr.SelectData``) and a ``gr.Progress`` tracker when asked for.

    gradio finds the event data and the progress tracker by inspecting the function's
    signature, so a ``*args`` wrapper would never receive them.
    """

    def handler(*args: Any) -> Any:
        return call(*args)

    params = [inspect.Parameter(f"in{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in range(n_inputs)]
    annotations: dict[str, Any] = {}
    if select:
        params.append(inspect.Parameter("evt", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.SelectData))
        annotations["evt"] = gr.SelectData
    if progress:
        params.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
    handler.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    handler.__annotations__ = annotations
    handler.__name__ = getattr(call, "__name__", "handler")
    return handler


SETTINGS_SLOT = "tt_settings"  # gradio 4 queue slot shared by field saves and the actions that read them


def settings_slot() -> dict[str, Any]:
    """Listener arguments that run an event in the settings' queue slot, one at a time in the order
    they were made (gradio 4): a save made by leaving a field runs before a *Begin train* clicked
    right after it. gradio 3 has one pool of workers and starts events in order anyway."""
    return {"concurrency_limit": 1, "concurrency_id": SETTINGS_SLOT} if IS_GRADIO_4 else {}


def save_events(kind: str) -> list[tuple[str, dict]]:
    """The events (name, listener arguments) on which a settings field of ``kind`` saves itself.

    Only user edits save (never a value set by loading a version), once per finished edit, with
    the value the field has at that moment: text and numbers on ``blur`` (and ``submit``, Enter),
    sliders on ``release``, choices on ``input``. Numbers do not save on ``input``: gradio 4 never
    fires it for an emptied field (so "unset" could not be saved) and, with ``always_last``,
    could send a held-back keystroke after a later edit. Saves run in the settings' queue slot
    (``settings_slot``), so they run in the order they were made.
    """
    once = settings_slot()
    if kind in ("checkbox", "dropdown", "checkpoint", "multiselect"):
        return [("input", dict(once))]
    if kind == "slider":
        return [("release", dict(once))]
    return [("blur", dict(once))] if kind == "textarea" else [("blur", dict(once)), ("submit", dict(once))]


def event_listener(component: Any, event: str) -> Callable:
    """``component``'s listener for ``event`` (e.g. ``number.blur``).

    gradio 4.40's ``gr.Number`` fires ``blur`` in the page but its Python class lists no
    ``blur`` listener; the generic one of ``gr.events.Events`` is bound to it instead.
    """
    method = getattr(component, event, None)
    if method is not None:
        return method
    trigger = getattr(getattr(gr.events, "Events", None), event, None)
    if trigger is None or not hasattr(trigger, "listener"):
        raise AttributeError(f"{type(component).__name__} has no {event} event in gradio {gr.__version__}")
    return types.MethodType(trigger.listener, component)


def latest_only() -> dict[str, Any]:
    """Listener arguments for live displays: in gradio 4, skip stale calls and keep the last."""
    return {"trigger_mode": "always_last", "concurrency_limit": 1} if IS_GRADIO_4 else {}


def progress_callback(tracker: Any) -> Callable[[int, int, str], None]:
    """A library-style ``progress(done, total, name)`` callback that drives a ``gr.Progress``."""

    def report(done: int, total: int, name: str = "") -> None:
        if tracker is None:
            return
        fraction = done / total if total else 1.0
        try:
            tracker(fraction, desc=f"{done}/{total} {name}".strip())
        except Exception:  # progress display must never break the work itself
            pass

    return report


def enable_queue(demo: gr.Blocks, concurrency: int = 8) -> gr.Blocks:
    """Turn the queue on so that long events show progress and do not block the others."""
    if IS_GRADIO_4:
        return demo.queue(default_concurrency_limit=concurrency, api_open=False)
    return demo.queue(concurrency_count=concurrency, api_open=False)


def add_page_assets(demo: gr.Blocks, css: str, js: str) -> None:
    """Add the extension's CSS and JavaScript to a page the standalone app serves."""
    demo.css = ((demo.css or "") + "\n" + css).strip()
    if not js.strip():
        return
    if IS_GRADIO_4:
        demo.head = (demo.head or "") + f"<script>\n{js}\n</script>"
        return
    with demo:
        demo.load(None, None, None, _js="() => {\n" + js + "\n}")


def launch_kwargs(host: str, port: int, allowed_paths: Sequence[Path]) -> dict[str, Any]:
    """``Blocks.launch`` arguments shared by both versions for a local, quiet server."""
    return {
        "server_name": host,
        "server_port": port,
        "allowed_paths": [str(Path(p).resolve()) for p in allowed_paths],
        "show_api": False,
        "inbrowser": False,
        "share": False,
        "prevent_thread_lock": True,
    }


def served_app(demo: gr.Blocks, launched: Any = None) -> Any:
    """The FastAPI app serving ``demo`` after ``launch`` (``launched``: what ``launch`` returned),
    where more routes (the HTTP API) can be added."""
    app = launched[0] if isinstance(launched, tuple) and launched else None
    app = app if app is not None else getattr(demo, "server_app", None)
    if app is None or not hasattr(app, "include_router"):
        raise RuntimeError(f"gradio {gr.__version__} gave no FastAPI app for the launched page")
    return app


def poll(demo: gr.Blocks, fn: Callable, inputs: list, outputs: list, seconds: float) -> None:
    """Call ``fn`` with the inputs' current values every ``seconds`` while the page is open (live
    progress), without a loading indicator on its outputs. Call it inside the Blocks' layout.

    gradio 4.40 has ``gr.Timer``. gradio 3's ``every=`` repeats the call with the inputs' values
    from when the page loaded, so there a repeating load only writes the time into a hidden box
    and that box's ``change`` event makes the call, with the inputs as they are then.
    """
    timer_class = getattr(gr, "Timer", None)
    if IS_GRADIO_4 and timer_class is not None:
        timer_class(seconds).tick(fn, inputs=inputs, outputs=outputs, show_progress="hidden")
        return
    clock = gr.Textbox(visible=False)
    demo.load(_clock_text, None, clock, every=seconds, show_progress="hidden")
    clock.change(fn, inputs=inputs, outputs=outputs, show_progress="hidden")


def _clock_text() -> str:
    import time

    return f"{time.monotonic():.3f}"
