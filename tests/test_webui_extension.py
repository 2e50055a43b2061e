"""The extension's callbacks (lib_train_tools/webui_extension.py and scripts/train_tools.py).

Run with the fake ``modules`` package (tests/host/fake_webui) and small stand-ins for the host,
the services and the tab, in both gradio versions the WebUIs use.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from fastapi import FastAPI

from lib_train_tools.host.webui_requirements import Problem, Requirement
from lib_train_tools.jobs.queue import JobQueue
from lib_train_tools.projects import Store

from .api.asgi_client import AsgiClient
from .host.webui_fixtures import fake_webui  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
LION = Requirement("lion-pytorch", "0.1.2", "the Lion optimizer")


class Queue:
    def __init__(self, fail_start=None):
        self.fail_start = fail_start
        self.calls = []

    def start(self):
        self.calls.append("start")
        if self.fail_start:
            raise self.fail_start

    def shutdown(self, stop_running=True):
        self.calls.append(("shutdown", stop_running))

    def jobs(self):
        return []


class Host:
    name = "fake"

    def __init__(self, root):
        self.root = root
        self.cleared = 0

    def output_root(self):
        return self.root

    def clear_preview_staging(self):
        self.cleared += 1
        return 0

    def checkpoints(self):
        return []


def _extension(tmp_path, ui=None, problems=(), queue=None, made=None):
    from lib_train_tools.webui_extension import TrainToolsExtension

    made = made if made is not None else []

    def services(host):
        made.append(host)
        return SimpleNamespace(host=host, store=Store(tmp_path / "out"), queue=queue if queue is not None else Queue())

    def build(services):
        with gr.Blocks() as tab:
            gr.Textbox(label="Project", value="cat", elem_id="tt_project")
            gr.Button("Begin train")
        return tab

    return TrainToolsExtension(host_factory=lambda: Host(tmp_path), services_factory=services,
                               ui_factory=ui or build, problems=list(problems))


def _render_like_the_webui(blocks):
    """What modules/ui.py create_ui does with an extension tab: render it inside a TabItem."""
    with gr.Blocks() as demo:
        with gr.Tabs():
            with gr.TabItem("Train Tools", id="train_tools", elem_id="tab_train_tools"):
                blocks.render()
    return demo.get_config_file()


def _components(config):
    return {c["props"].get("elem_id") or c["props"].get("label") or c["props"].get("value"): c
            for c in config["components"]}


def test_the_script_registers_four_callbacks_and_does_nothing_heavy(fake_webui):  # noqa: F811
    namespace = runpy.run_path(str(REPO / "scripts" / "train_tools.py"))
    registered = fake_webui.script_callbacks.callbacks
    assert [len(registered[k]) for k in ("ui_settings", "ui_tabs", "app_started", "script_unloaded")] == [1, 1, 1, 1]
    assert namespace["extension"]._services is None


def test_tab_is_built_once_with_title_and_elem_id_and_kept_out_of_ui_config(fake_webui, tmp_path):  # noqa: F811
    made = []
    extension = _extension(tmp_path, made=made)
    [(blocks, title, elem_id)] = extension.on_ui_tabs()
    assert (title, elem_id) == ("Train Tools", "train_tools")
    assert blocks.blocks and all(getattr(b, "do_not_save_to_config", False) for b in blocks.blocks.values())
    fake_webui.shared.cmd_opts.nowebui = True
    extension.on_app_started(None, FastAPI())
    assert len(made) == 1 and extension.services().queue.calls == ["start"]


def test_missing_packages_are_shown_above_the_tab(fake_webui, tmp_path):  # noqa: F811
    extension = _extension(tmp_path, problems=[Problem(LION, None)])
    [(blocks, _, _)] = extension.on_ui_tabs()
    components = _components(_render_like_the_webui(blocks))
    notice = components["train_tools_notice"]["props"]["value"]
    assert "lion-pytorch is missing (needed for the Lion optimizer; version 0.1.2 or newer)" in notice
    assert 'pip install "lion-pytorch>=0.1.2"' in notice
    assert "tt_project" in components                       # the real tab is still there


def test_a_tab_that_cannot_be_built_says_why(fake_webui, tmp_path, capsys):  # noqa: F811
    def broken(services):
        raise ImportError("No module named 'toml'")

    extension = _extension(tmp_path, ui=broken, problems=[Problem(Requirement("toml", "0.10", "configs"), None)])
    [(blocks, title, _)] = extension.on_ui_tabs()
    notice = _components(_render_like_the_webui(blocks))["train_tools_notice"]["props"]["value"]
    assert "could not build its tab:** ImportError: No module named 'toml'" in notice
    assert "toml is missing" in notice and title == "Train Tools"
    assert "[Train Tools] the tab could not be built" in capsys.readouterr().out


def test_queue_that_cannot_start_is_reported_in_the_tab(fake_webui, tmp_path):  # noqa: F811
    queue = Queue(fail_start=ValueError("another Train Tools process is running the job queue in /x"))
    extension = _extension(tmp_path, queue=queue)
    [(blocks, _, _)] = extension.on_ui_tabs()
    notice = _components(_render_like_the_webui(blocks))["train_tools_notice"]["props"]["value"]
    assert "jobs will not run in this WebUI: another Train Tools process" in notice


def test_api_only_mode_registers_settings_and_mounts_the_api(fake_webui, tmp_path):  # noqa: F811
    fake_webui.shared.cmd_opts.nowebui, fake_webui.shared.cmd_opts.api = True, False
    extension = _extension(tmp_path)
    app = FastAPI()
    extension.on_app_started(None, app)                        # demo is None: no tab was ever built
    assert "train_tools_output_dir" in fake_webui.shared.opts.data_labels
    answer = AsgiClient(app).get("/train-tools/v1/projects")
    assert answer.status_code == 200 and answer.json() == []


def test_api_is_off_without_the_api_flag_and_guarded_with_api_auth(fake_webui, tmp_path):  # noqa: F811
    opts = fake_webui.shared.cmd_opts
    opts.api, opts.nowebui = False, False
    app = FastAPI()
    _extension(tmp_path).on_app_started(object(), app)
    assert AsgiClient(app).get("/train-tools/v1/projects").status_code == 404
    opts.api, opts.api_auth = True, "user:pw"
    app = FastAPI()
    _extension(tmp_path).on_app_started(object(), app)
    assert AsgiClient(app).get("/train-tools/v1/projects").status_code == 401


def test_reload_ui_lets_the_queue_go_without_stopping_the_trainer(fake_webui, tmp_path):  # noqa: F811
    extension = _extension(tmp_path)
    services = extension.services()
    extension.on_script_unloaded()
    assert services.queue.calls == ["start", ("shutdown", False)]
    assert services.host.cleared == 2                               # at start-up and at unload
    with pytest.raises(RuntimeError, match="unloaded"):
        extension.services()
    extension.on_script_unloaded()                                  # a second unload does nothing
    assert services.queue.calls == ["start", ("shutdown", False)]


def test_the_real_queue_never_runs_twice_across_reloads(fake_webui, tmp_path):  # noqa: F811
    root = tmp_path / "out" / "jobs"
    first = _extension(tmp_path, queue=JobQueue(root))
    first.services()
    second = _extension(tmp_path, queue=JobQueue(root))
    [(blocks, _, _)] = second.on_ui_tabs()                            # while the first still owns it
    assert any("jobs will not run in this WebUI" in n for n in second.notices)
    first.on_script_unloaded()                                       # "Reload UI": the old load lets go
    third = _extension(tmp_path, queue=JobQueue(root))
    third.services()
    assert third.notices == []
    third.on_script_unloaded()
