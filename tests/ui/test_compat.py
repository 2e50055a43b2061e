"""The gradio 3/4 differences: file values, signatures gradio inspects, updates and tables."""

from __future__ import annotations

import tempfile
from types import SimpleNamespace

import gradio as gr
import pandas
import pytest

from lib_train_tools.ui import compat
from lib_train_tools.ui.replies import NO_CHANGE, Table, Update


def test_file_paths_accept_both_versions_upload_values(tmp_path):
    wrapper = tempfile.NamedTemporaryFile(delete=False, dir=tmp_path)
    wrapper.name = str(tmp_path / "a.png")  # gradio 3 hands out tempfile wrappers named after the upload
    values = [wrapper, str(tmp_path / "b.png"), {"path": str(tmp_path / "c.zip")}, SimpleNamespace(path="/d.png")]
    assert compat.file_paths(values) == [str(tmp_path / n) for n in ("a.png", "b.png", "c.zip")] + ["/d.png"]
    assert compat.file_paths(str(tmp_path / "one.png")) == [str(tmp_path / "one.png")]
    assert compat.file_paths(None) == []
    wrapper.close()


def test_event_fn_has_the_signature_gradio_looks_for():
    from gradio.helpers import special_args

    calls = []
    fn = compat.event_fn(lambda *args: calls.append(args), 2, select=True, progress=True)
    inputs, progress_index, event_index = special_args(fn, inputs=["a", "b"], event_data=None)[:3]
    assert (progress_index, event_index) == (3, 2)
    assert isinstance(inputs[3], gr.Progress)


def test_to_gradio_updates_and_tables():
    update = compat.to_gradio(Update.of(choices=["a"], value="a"))
    assert update["choices"] == ["a"] and update["value"] == "a"
    assert set(compat.to_gradio(NO_CHANGE)) <= {"__type__"}
    frame = compat.to_gradio(Table(("tag", "images"), ()))
    assert isinstance(frame, pandas.DataFrame) and list(frame.columns) == ["tag", "images"]
    assert compat.to_gradio("text") == "text"


def test_js_and_save_events_follow_the_version():
    key = "js" if compat.IS_GRADIO_4 else "_js"
    assert compat.js_kwargs("() => 1") == {key: "() => 1"}
    assert compat.js_kwargs(None) == {}
    assert [name for name, _ in compat.save_events("number")] == ["blur", "submit"]
    assert [name for name, _ in compat.save_events("slider")] == ["release"]
    assert [name for name, _ in compat.save_events("textarea")] == ["blur"]
    with gr.Blocks():  # every event named can be listened to on the component of that kind in this version
        components = {"number": gr.Number(), "slider": gr.Slider(), "text": gr.Textbox(),
                      "textarea": gr.Textbox(lines=3), "checkbox": gr.Checkbox(), "dropdown": gr.Dropdown()}
        for kind, component in components.items():
            for name, kwargs in compat.save_events(kind):
                compat.event_listener(component, name)(lambda v: None, inputs=[component], outputs=[], **kwargs)


def test_saves_share_one_queue_slot_in_gradio_4():
    """Enter then leaving a field, or leaving it by clicking Begin train: run in the order made."""
    events = compat.save_events("number") + compat.save_events("checkbox")
    if compat.IS_GRADIO_4:
        assert all(kw == {"concurrency_id": compat.SETTINGS_SLOT, "concurrency_limit": 1} for _, kw in events)
        assert compat.settings_slot() == events[0][1]
    else:
        assert compat.settings_slot() == {} and all(kw == {} for _, kw in events)


def test_number_blur_is_a_listener_in_both_versions():
    with gr.Blocks() as demo:
        number = gr.Number(elem_id="n")
        compat.event_listener(number, "blur")(lambda v: v, inputs=[number], outputs=[number])
    (dependency,) = demo.get_config_file()["dependencies"]
    if compat.IS_GRADIO_4:
        assert [list(t) for t in dependency["targets"]] == [[number._id, "blur"]]
    else:
        assert dependency["targets"] == [number._id] and dependency["trigger"] == "blur"
    with pytest.raises(AttributeError, match="has no nonsense event"):
        compat.event_listener(number, "nonsense")


@pytest.mark.parametrize("done,total,expected", [(1, 4, 0.25), (0, 0, 1.0)])
def test_progress_callback_drives_a_tracker(done, total, expected):
    seen = []
    compat.progress_callback(lambda fraction, desc: seen.append((fraction, desc)))(done, total, "x.png")
    assert seen == [(expected, f"{done}/{total} x.png")]
    compat.progress_callback(None)(1, 2, "ignored")  # no tracker: nothing happens


def test_the_queue_runs_several_events_at_once():
    """gradio 3's queue defaults to one worker for the whole page: a long action would block the rest."""
    with gr.Blocks() as demo:
        gr.Button().click(lambda: None)
    compat.enable_queue(demo, 8)
    if compat.IS_GRADIO_4:
        assert demo._queue.default_concurrency_limit == 8
    else:
        assert demo._queue.max_thread_count == 8


def test_poll_calls_with_the_inputs_current_values():
    """gradio 3's every= would repeat the page load's input values: a hidden clock's change calls instead."""
    with gr.Blocks() as demo:
        box = gr.Textbox()
        out = gr.HTML()
        compat.poll(demo, lambda v: v, [box], [out], 1.0)
    config = demo.get_config_file()
    calls = [d for d in config["dependencies"] if d["inputs"] == [box._id]]
    assert len(calls) == 1 and calls[0]["outputs"] == [out._id]
    if compat.IS_GRADIO_4:
        assert calls[0]["targets"][0][1] == "tick"
    else:
        assert calls[0]["trigger"] == "change" and calls[0]["targets"] != [box._id]
        assert [d["every"] for d in config["dependencies"] if d.get("every")] == [1.0]


def test_served_app_is_the_fastapi_app_launch_returned():
    from fastapi import FastAPI

    launched, kept = FastAPI(), FastAPI()
    assert compat.served_app(SimpleNamespace(server_app=kept), (launched, "http://x/", None)) is launched
    assert compat.served_app(SimpleNamespace(server_app=kept), None) is kept
    with pytest.raises(RuntimeError):
        compat.served_app(SimpleNamespace(), None)
