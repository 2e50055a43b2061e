"""The WebUI host adapter (host/webui*.py) against the fake ``modules`` package (see fake_webui/).

These tests pin the adapter to the documented WebUI behaviour; the real WebUIs are exercised by
tests/webui/check_webui.py with the harness.
"""

from __future__ import annotations

import sys
import threading
from types import SimpleNamespace

import pytest
from PIL import Image

from lib_train_tools.contracts import HostSettings

from .webui_fixtures import add_checkpoint, fake_webui  # noqa: F401


@pytest.fixture
def host(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui import WebUIHost

    return WebUIHost()


def test_folders_follow_the_webui_and_the_settings(fake_webui, host, tmp_path):  # noqa: F811
    assert host.name == "a1111"
    assert host.output_root() == fake_webui.root / "outputs" / "train_tools"
    assert host.lora_dir() == host.webui_lora_dir() == fake_webui.models / "Lora"
    fake_webui.shared.cmd_opts.lora_dir = str(tmp_path / "my-loras")           # --lora-dir
    fake_webui.shared.opts.data["train_tools_output_dir"] = str(tmp_path / "tt")
    assert host.output_root() == tmp_path / "tt"
    assert host.lora_dir() == tmp_path / "my-loras"
    fake_webui.shared.opts.data["train_tools_publish_dir"] = str(tmp_path / "publish")
    assert host.lora_dir() == tmp_path / "publish"
    assert host.webui_lora_dir() == tmp_path / "my-loras"                       # previews stay where Lora looks
    assert host.python_executable() == sys.executable


def test_taggers_folder_defaults_inside_models_and_follows_the_setting(fake_webui, host, tmp_path):  # noqa: F811
    from lib_train_tools.host.webui_settings import OPTIONS_BY_KEY, TAGGERS_DIR

    assert host.taggers_dir() == fake_webui.models / "train_tools_taggers"
    fake_webui.paths_internal.models_path = str(tmp_path / "data" / "models")  # --models-dir / --data-dir
    assert host.taggers_dir() == tmp_path / "data" / "models" / "train_tools_taggers"
    fake_webui.shared.opts.data[TAGGERS_DIR] = f"  {tmp_path / 'my-taggers'}  "
    assert host.taggers_dir() == tmp_path / "my-taggers"
    fake_webui.shared.opts.data[TAGGERS_DIR] = ""
    assert host.taggers_dir().name == "train_tools_taggers"
    assert OPTIONS_BY_KEY[TAGGERS_DIR].default == "" and not OPTIONS_BY_KEY[TAGGERS_DIR].needs_restart


def test_lora_dir_defaults_to_models_lora_without_the_lora_extension(fake_webui, host):  # noqa: F811
    fake_webui.shared.cmd_opts.lora_dir = None
    assert host.webui_lora_dir() == fake_webui.models / "Lora"


def test_checkpoints_come_from_the_webui_list_including_ckpt_dir(fake_webui, host, tmp_path):  # noqa: F811
    add_checkpoint(fake_webui, "sd15.safetensors")
    add_checkpoint(fake_webui, "xl/Juggernaut.safetensors")
    extra = add_checkpoint(fake_webui, "fromflag.ckpt", folder=tmp_path / "ckpt-dir")   # --ckpt-dir
    choices = host.checkpoints()
    assert [c.title for c in choices] == ["fromflag.ckpt", "sd15.safetensors", "xl/Juggernaut.safetensors"]
    assert choices[0].path == extra
    assert all(c.path.is_file() for c in choices)


def test_host_settings_defaults_and_saved_values(fake_webui, host, monkeypatch):  # noqa: F811
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert host.settings() == HostSettings(auto_publish=True, unload_model_while_training=False,
                                           keep_last_n_checkpoints=0)
    fake_webui.shared.opts.data.update(train_tools_auto_publish=False, train_tools_unload_model=True,
                                       train_tools_keep_last_n=3.0)
    assert host.settings() == HostSettings(False, True, 3)
    fake_webui.shared.opts.data["train_tools_keep_last_n"] = "lots"
    assert host.settings().keep_last_n_checkpoints == 0


def test_unload_default_follows_cuda(fake_webui, monkeypatch):  # noqa: F811
    import torch

    from lib_train_tools.host.webui_settings import UNLOAD_MODEL, option_value

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert option_value(UNLOAD_MODEL) is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert option_value(UNLOAD_MODEL) is False


def test_settings_section_is_registered_with_section_and_category(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui_settings import OPTIONS, register_settings, settings_registered

    assert not settings_registered()
    register_settings()
    assert settings_registered()
    labels = fake_webui.shared.opts.data_labels
    assert {o.key for o in OPTIONS} <= set(labels)
    for option in OPTIONS:
        info = labels[option.key]
        assert info.section == ("train_tools", "Train Tools") and info.category_id == "training"
    assert labels["train_tools_output_dir"].restart and not labels["train_tools_auto_publish"].restart
    assert labels["train_tools_keep_last_n"].component_args == {"precision": 0}
    assert fake_webui.shared.opts.train_tools_auto_publish is True


def _loaded_model(fake_webui):  # noqa: F811
    model = fake_webui.sd_models.FakeModel("sd15.safetensors")
    fake_webui.sd_models.model_data.sd_model = model
    return model


def test_a1111_unload_moves_the_model_to_cpu_and_back(fake_webui, host):  # noqa: F811
    fake_webui.shared.opts.data["train_tools_unload_model"] = True
    model = _loaded_model(fake_webui)
    host.before_training()
    assert model.device == "cpu"
    host.after_training()
    assert model.device == "cuda" and model.moves == ["cpu", "cuda"]
    assert fake_webui.call_queue.queue_lock.acquisitions == 2
    assert fake_webui.shared.sd_model_reads == []


def test_a1111_unload_with_no_model_loaded_loads_nothing(fake_webui, host):  # noqa: F811
    fake_webui.shared.opts.data["train_tools_unload_model"] = True
    host.before_training()
    host.after_training()
    assert fake_webui.sd_models.model_data.sd_model is None
    assert fake_webui.shared.sd_model_reads == [] and fake_webui.sd_models.calls == []


def test_a1111_model_comes_back_after_a_reload_ui_during_training(fake_webui, host):  # noqa: F811
    from lib_train_tools.host.webui import WebUIHost

    fake_webui.shared.opts.data["train_tools_unload_model"] = True
    model = _loaded_model(fake_webui)
    host.before_training()
    WebUIHost().after_training()          # the extension was loaded again; the job's end is seen there
    assert model.device == "cuda"
    host.after_training()                 # and only once
    assert model.moves == ["cpu", "cuda"]


def test_a1111_model_switched_during_training_is_left_alone(fake_webui, host):  # noqa: F811
    fake_webui.shared.opts.data["train_tools_unload_model"] = True
    old = _loaded_model(fake_webui)
    host.before_training()
    new = _loaded_model(fake_webui)
    host.after_training()
    assert old.device == "cpu" and new.moves == []


def test_unload_setting_off_touches_nothing(fake_webui, host):  # noqa: F811
    fake_webui.shared.opts.data["train_tools_unload_model"] = False
    model = _loaded_model(fake_webui)
    host.before_training()
    host.after_training()
    assert model.moves == [] and fake_webui.sd_models.calls == []


def test_forge_unloads_everything_and_reloads_lazily(fake_webui):  # noqa: F811
    fake_webui.forge.make_forge()
    from lib_train_tools.host.webui import WebUIHost

    host = WebUIHost()
    assert host.name == "forge"
    fake_webui.shared.opts.data["train_tools_unload_model"] = True
    _loaded_model(fake_webui)
    host.before_training()
    host.after_training()
    assert [c[0] for c in fake_webui.sd_models.calls] == ["unload_all_models"]


def test_unload_waits_for_a_generation_holding_the_queue_lock(fake_webui, host):  # noqa: F811
    fake_webui.shared.opts.data["train_tools_unload_model"] = True
    model = _loaded_model(fake_webui)
    lock = fake_webui.call_queue.queue_lock
    lock.__enter__()
    worker = threading.Thread(target=host.before_training)
    worker.start()
    worker.join(0.3)
    assert worker.is_alive() and model.device == "cuda"   # blocked behind the "generation"
    lock.__exit__(None, None, None)
    worker.join(30)
    assert not worker.is_alive() and model.device == "cpu"


def test_taggers_use_the_webui_interrogators_under_the_lock(fake_webui, host):  # noqa: F811
    blip, deepbooru = host.taggers()
    image = Image.new("RGBA", (8, 8))
    assert blip.availability().available and deepbooru.availability().available
    assert blip.tag(image) == ["a photo of a cat, sitting"]
    assert deepbooru.tag(image) == ["1girl", "solo", "smile"]
    assert fake_webui.shared.interrogator.images[0].mode == "RGB"
    assert fake_webui.call_queue.queue_lock.acquisitions == 2


def test_lora_published_refreshes_the_lora_list_when_the_extension_is_loaded(fake_webui, host, tmp_path,  # noqa: F811
                                                                           monkeypatch):
    refreshed = []
    monkeypatch.setitem(sys.modules, "networks", SimpleNamespace(list_available_networks=lambda: refreshed.append(1)))
    host.lora_published(fake_webui.models / "Lora" / "cat-v1.safetensors")
    host.lora_published(fake_webui.models / "Lora" / "sub" / "cat-v2.safetensors")
    host.lora_published(tmp_path / "elsewhere" / "cat.safetensors")     # not where the Lora extension looks
    assert refreshed == [1, 1]
    monkeypatch.delitem(sys.modules, "networks")
    host.lora_published(fake_webui.models / "Lora" / "cat-v1.safetensors")   # no Lora extension: no error


def test_api_enabled_follows_api_and_nowebui_flags(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui import api_enabled

    opts = fake_webui.shared.cmd_opts
    opts.api, opts.nowebui = False, False
    assert not api_enabled()
    opts.nowebui = True
    assert api_enabled()
    opts.api, opts.nowebui = True, False
    assert api_enabled()
