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
    number_events = [name for name, _ in compat.save_events("number")]
    assert number_events == (["input"] if compat.IS_GRADIO_4 else ["blur", "submit"])
    assert [name for name, _ in compat.save_events("slider")] == ["release"]
    assert [name for name, _ in compat.save_events("textarea")] == ["blur"]
    with gr.Blocks():  # every event named exists on the component of that kind in this version
        components = {"number": gr.Number(), "slider": gr.Slider(), "text": gr.Textbox(),
                      "textarea": gr.Textbox(lines=3), "checkbox": gr.Checkbox(), "dropdown": gr.Dropdown()}
    for kind, component in components.items():
        for name, _ in compat.save_events(kind):
            assert callable(getattr(component, name)), (kind, name)


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
