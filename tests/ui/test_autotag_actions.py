"""Auto-tag box handlers: where taggers are found and downloaded, the WD14 options reaching the tagger,
and the onnxruntime note and install button (pip itself is replaced; tests/host covers the command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lib_train_tools.contracts import TAGGERS_FOLDER
from lib_train_tools.datasets import onnxruntime_install as ort
from lib_train_tools.datasets.onnxruntime_install import InstallOutcome, PackageChoice, TorchCuda
from lib_train_tools.ui import dataset_actions as actions
from lib_train_tools.ui import onnxruntime_actions

FORM = (64, 64, "keep_aspect", "center", 0, False, "keep", "png")  # the preprocessing form's fields
CSV = "tag_id,name,category,count\n0,smile,0,1\n"


class TaggersDirHost:
    """The standalone host with another taggers folder, as the WebUI's (models/train_tools_taggers)."""

    def __init__(self, host, taggers_dir: Path):
        self._host, self._dir = host, taggers_dir

    def __getattr__(self, name):
        return getattr(self._host, name)

    def taggers(self):
        return []

    def taggers_dir(self) -> Path:
        return self._dir


def put_tagger(root: Path, name: str, model: bytes = b"model", csv: str = CSV) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(model)
    (folder / "selected_tags.csv").write_text(csv, encoding="utf-8")
    return folder


def test_taggers_folder_first_and_earlier_downloads_still_listed(services, tmp_path, monkeypatch):
    legacy = Path(services.host.output_root()) / TAGGERS_FOLDER
    assert actions.tagger_roots(services) == [legacy]  # standalone: the same folder
    models = tmp_path / "webui" / "models" / "train_tools_taggers"
    services.host = TaggersDirHost(services.host, models)
    assert actions.tagger_roots(services) == [models, legacy]
    put_tagger(legacy, "wd-vit-tagger-v3")
    put_tagger(legacy, "old-only")
    put_tagger(models, "wd-vit-tagger-v3")
    taggers = actions.available_taggers(services)
    assert [(t.name, t.model_dir.parent) for t in taggers] == [
        ("WD14 (wd-vit-tagger-v3)", models), ("WD14 (old-only)", legacy)]

    def download(repo_id, cache_root, progress=None):
        return put_tagger(Path(cache_root), repo_id.split("/")[-1])

    monkeypatch.setattr(actions, "download_tagger", download)
    reply = actions.download_known_tagger(services, "wd-swinv2-tagger-v3")
    assert (models / "wd-swinv2-tagger-v3" / "model.onnx").is_file()
    assert reply.values[0].get("value") == "WD14 (wd-swinv2-tagger-v3)"
    empty = actions.tagger_choices(TaggersOnlyIn(tmp_path / "empty"))
    assert empty.values[0].get("choices") == [] and f"into {tmp_path / 'empty'} and press refresh" in empty.notice.text


class TaggersOnlyIn:
    """Services whose host lists nothing and keeps taggers in an empty folder."""

    def __init__(self, folder: Path):
        self.host = self
        self._folder = folder

    def output_root(self) -> Path:
        return self._folder / "out"

    def taggers(self):
        return []

    def taggers_dir(self) -> Path:
        return self._folder


def test_wd14_options_from_the_form(services, selection, tmp_path):
    """The tiny ONNX tagger of tests/datasets/test_tagger_download.py, run through the tab's handler."""
    pytest.importorskip("onnxruntime")
    from tests.datasets.test_tagger_download import TAGS_CSV, tiny_wd14_model

    put_tagger(Path(services.host.taggers_dir()), "tiny", tiny_wd14_model(), TAGS_CSV)
    incoming = tmp_path / "in"
    incoming.mkdir()
    for name, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        Image.new("RGB", (64, 64), color).save(incoming / f"{name}.png")
    actions.upload_files(services, selection, [str(p) for p in sorted(incoming.iterdir())], False)
    version = services.store.version("テスト", "v1")
    steps = []
    reply = actions.run_autotag(services, selection, "WD14 (tiny)", 0.5, *FORM,
                                progress=lambda d, t, n: steps.append((d, t)), character_threshold=0.7,
                                include_rating=True, character_tags_first=True, batch_size=2)
    tags = json.loads(version.generated_tags_file.read_text(encoding="utf-8"))
    # red: sensitive 0.88 (top rating), char_b 0.82 >= 0.7 first, red_hair 0.88; char_a 0.57 < 0.7
    assert tags == {"red": ["sensitive", "char b", "red hair"], "blue": ["general", "blue sky"]}
    assert steps[:2] == [(1, 2), (2, 2)]  # one step per image, then preprocessing's own
    assert "tagged 2 image(s)" in reply.notice.text
    actions.run_autotag(services, selection, "WD14 (tiny)", 0.1, *FORM, character_threshold="",
                        include_rating=False, character_tags_first=False, batch_size="")
    tags = json.loads(version.generated_tags_file.read_text(encoding="utf-8"))
    assert tags["red"] == ["red hair", "char b", "char a", "blue sky"]  # character threshold = general's


def test_form_fields_become_wd14_changes():
    assert actions.wd14_changes() == {}
    assert actions.wd14_changes("0.8", True, False, 8.0) == {
        "character_threshold": 0.8, "include_rating": True, "character_tags_first": False, "batch_size": 8}
    assert actions.wd14_changes("", None, None, "") == {}


def test_note_and_button_when_onnxruntime_is_missing(services, monkeypatch):
    monkeypatch.setattr(ort, "onnxruntime_importable", lambda: False)
    monkeypatch.setattr(ort, "torch_cuda", lambda: TorchCuda(None, None, False))
    note, button = onnxruntime_actions.onnxruntime_note(services)
    python = services.host.python_executable()
    assert button.get("visible") is True
    assert "WD14 taggers need onnxruntime, which is not installed" in note
    assert f"<code>&quot;{python}&quot; -m pip install onnxruntime</code>" in note
    monkeypatch.setattr(ort, "torch_cuda", lambda: TorchCuda("12.4", 90100, True))
    note, _ = onnxruntime_actions.onnxruntime_note(services)
    assert "installs onnxruntime-gpu&gt;=1.19 (torch has CUDA 12.4 and cuDNN 9" in note
    monkeypatch.setattr(ort, "onnxruntime_importable", lambda: True)
    assert onnxruntime_actions.onnxruntime_note(services) == ("", onnxruntime_actions.Update.of(visible=False))


def test_install_button_installs_then_hides(services, monkeypatch):
    state = {"importable": False}
    monkeypatch.setattr(ort, "onnxruntime_importable", lambda: state["importable"])
    monkeypatch.setattr(ort, "torch_cuda", lambda: TorchCuda(None, None, False))
    calls = []

    def fake_install(python, progress=None):
        calls.append(python)
        progress(4, 4, "installed")
        state["importable"] = True
        return InstallOutcome(True, True, PackageChoice("onnxruntime", "cpu"), ("pip",), "Successfully installed")

    monkeypatch.setattr(ort, "install_onnxruntime", fake_install)
    steps = []
    reply = onnxruntime_actions.install_onnxruntime(services, lambda d, t, n: steps.append((d, t)))
    assert calls == [services.host.python_executable()] and steps == [(4, 4)]
    assert reply.notice.kind == "ok" and "work now, no restart needed" in reply.notice.text
    assert reply.values[0] == "" and reply.values[1].get("visible") is False
    again = onnxruntime_actions.install_onnxruntime(services)
    assert again.notice.text == "onnxruntime is installed already" and len(calls) == 1


def test_install_refused_says_why_and_the_command(services, monkeypatch):
    monkeypatch.setattr(ort, "onnxruntime_importable", lambda: False)
    monkeypatch.setattr(ort, "torch_cuda", lambda: TorchCuda(None, None, False))
    refused = InstallOutcome(False, False, PackageChoice("onnxruntime", "cpu"), ("pip",),
                             "ERROR: Cannot install onnxruntime because these package versions have conflicting "
                             "dependencies.")
    monkeypatch.setattr(ort, "install_onnxruntime", lambda python, progress=None: refused)
    with pytest.raises(RuntimeError, match=r"could not install onnxruntime without changing .*conflicting "
                                           r"dependencies.*-m pip install onnxruntime"):
        onnxruntime_actions.install_onnxruntime(services)
    installed_but_not_importable = InstallOutcome(True, False, PackageChoice("onnxruntime", "cpu"), ("pip",), "")
    monkeypatch.setattr(ort, "install_onnxruntime", lambda python, progress=None: installed_but_not_importable)
    reply = onnxruntime_actions.install_onnxruntime(services)
    assert reply.notice.kind == "warning" and "restart" in reply.notice.text


def test_the_autotag_box_has_the_options_and_the_install_button(services, monkeypatch):
    from lib_train_tools.ui.app import build_ui

    monkeypatch.setattr(ort, "onnxruntime_importable", lambda: False)
    monkeypatch.setattr(ort, "torch_cuda", lambda: TorchCuda(None, None, False))
    demo = build_ui(services)
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert by_id["tt_character_threshold"].value == 0.85 and by_id["tt_threshold"].value == 0.35
    assert by_id["tt_include_rating"].value is False and by_id["tt_tagger_batch"].value == 4
    assert by_id["tt_install_onnxruntime"].visible and "not installed" in by_id["tt_onnxruntime_note"].value
    ids = {block._id: elem for elem, block in by_id.items()}
    events = demo.get_config_file()["dependencies"]

    def outputs_of(trigger: str) -> list:
        [event] = [e for e in events if any(ids.get(t) == trigger for t in _targets(e))]
        return [ids.get(o) for o in event["outputs"]]

    assert outputs_of("tt_install_onnxruntime")[-2:] == ["tt_onnxruntime_note", "tt_install_onnxruntime"]
    run = next(e for e in events if any(ids.get(t) == "tt_run_autotag" for t in _targets(e)))
    assert [ids.get(i) for i in run["inputs"]][1:7] == [
        "tt_tagger", "tt_threshold", "tt_character_threshold", "tt_include_rating", "tt_character_tags_first",
        "tt_tagger_batch"]


def _targets(event: dict) -> list:
    """The ids of the blocks that trigger an event: gradio 4 lists [id, event] pairs, gradio 3.41 bare ids."""
    return [t[0] if isinstance(t, (list, tuple)) else t for t in event.get("targets", [])]
