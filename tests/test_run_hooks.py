"""Around each job: the host's model freed and reloaded; a completed run pruned, published, previewed."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from lib_train_tools.contracts import HostSettings
from lib_train_tools.projects import Store, update_settings
from lib_train_tools.results.outcomes import read_outcomes
from lib_train_tools.run_hooks import RunHooks, preview_defaults, preview_prompt


class FakeRenderer:
    """Renders nothing (render_preview is replaced); records that it was closed."""

    def __init__(self):
        self.closed = False

    def render(self, request):
        raise AssertionError("render_preview is replaced in these tests")

    def release(self):
        pass

    def close(self):
        self.closed = True


class FakeHost:
    def __init__(self, lora_dir: Path, settings: HostSettings):
        self.calls = []
        self._lora_dir = lora_dir
        self._settings = settings
        self.renderer = FakeRenderer()

    def before_training(self):
        self.calls.append("before")

    def after_training(self):
        self.calls.append("after")

    def lora_dir(self):
        return self._lora_dir

    def settings(self):
        return self._settings

    def preview_renderer(self):
        return self.renderer

    def lora_published(self, path):
        self.calls.append(("published", Path(path).name))


@pytest.fixture
def run(tmp_path: Path):
    store = Store(tmp_path / "out")
    store.create_project("テスト")
    store.create_version("テスト", "v1")
    version = store.version("テスト", "v1")
    run_dir = version.trains / "run1"
    run_dir.mkdir(parents=True)
    for name in ("tiny-000001", "tiny-000002", "tiny"):
        save_file({"lora_unet_a.lora_down.weight": torch.zeros(1, 1)}, str(run_dir / f"{name}.safetensors"),
                  metadata={"ss_base_model_version": "sd_v1", "ss_output_name": "tiny"})
    sample = run_dir / "sample" / "tiny_e000002.png"
    sample.parent.mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(sample)
    job = SimpleNamespace(project="テスト", version="v1", run_name="run1", run_dir=run_dir, status="completed")
    progress = SimpleNamespace(final_path=str(run_dir / "tiny.safetensors"), epoch=2, step=16,
                               samples=[SimpleNamespace(path=str(sample))])
    return store, version, job, progress


def test_a_completed_run_is_pruned_and_published(run, tmp_path: Path):
    store, version, job, progress = run
    update_settings(version, {"activation_tag": "mychar"})
    host = FakeHost(tmp_path / "lora", HostSettings(auto_publish=True, keep_last_n_checkpoints=1))
    hooks = RunHooks(host, store)
    hooks.before_job(job)
    hooks.after_job(job, progress)
    assert host.calls == ["before", "after", ("published", "テスト-v1.safetensors")]  # the WebUI relists
    assert sorted(p.name for p in job.run_dir.glob("*.safetensors")) == ["tiny-000002.safetensors", "tiny.safetensors"]
    card = json.loads((tmp_path / "lora" / "テスト-v1.json").read_text(encoding="utf-8"))
    assert card["activation text"] == "mychar" and card["sd version"] == "SD1"
    assert "run 'run1' (epoch 2, 16 steps)" in card["notes"]
    assert (tmp_path / "lora" / "テスト-v1.safetensors").is_file()
    assert (tmp_path / "lora" / "テスト-v1.preview.png").is_file()
    published = read_outcomes(job.run_dir).published  # the Results panel shows where it went
    assert [(p.name, p.checkpoint, p.auto) for p in published] == [("テスト-v1", "tiny.safetensors", True)]


def test_other_endings_only_reload_the_host_model(run, tmp_path: Path):
    store, _version, job, progress = run
    host = FakeHost(tmp_path / "lora", HostSettings(auto_publish=True, keep_last_n_checkpoints=1))
    job.status = "failed"
    RunHooks(host, store).after_job(job, progress)
    assert host.calls == ["after"]
    assert not (tmp_path / "lora").exists() and len(list(job.run_dir.glob("*.safetensors"))) == 3


def test_preview_grid_when_the_version_asks_and_failures_are_reported_together(run, tmp_path: Path, monkeypatch):
    store, version, job, progress = run
    update_settings(version, {"preview_all_epochs": True, "sample_prompt": "red circle --w 64 --h 64\nsecond"})
    rendered = []

    def render_preview(run_dir, request, renderer):
        rendered.append((run_dir, request.prompt, renderer))
        return SimpleNamespace(folder=run_dir / "previews" / "p1")

    monkeypatch.setattr("lib_train_tools.results.preview.render_preview", render_preview)
    blocked = tmp_path / "lora-is-a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    host = FakeHost(blocked, HostSettings(auto_publish=True))
    with pytest.raises(RuntimeError, match="after the run: publish"):
        RunHooks(host, store).after_job(job, progress)
    assert rendered == [(job.run_dir, "red circle", host.renderer)]  # the preview ran although publishing failed
    assert host.renderer.closed  # the WebUI's staged LoRA copies are removed
    assert read_outcomes(job.run_dir).auto_previews == {"p1"}
    problems = read_outcomes(job.run_dir).problems
    assert len(problems) == 1 and problems[0].startswith("publish: ")


def test_preview_prompt_fallbacks():
    assert preview_prompt({"sample_prompt": "  a cat --n blurry\n"}) == "a cat"
    assert preview_prompt({"activation_tag": "mychar"}) == "mychar"
    assert preview_prompt({}) == "a picture"
    # the activation tag leads the sample prompt when it lacks it, once
    assert preview_prompt({"sample_prompt": "a cat --n blurry", "activation_tag": "mychar"}) == "mychar, a cat"
    assert preview_prompt({"sample_prompt": "a cat, mychar", "activation_tag": "mychar"}) == "a cat, mychar"


def test_preview_defaults_take_the_sample_prompt_flags_then_the_run():
    found = preview_defaults({"sample_prompt": "a cat --n blurry --w 96 --h 64 --s 12 --l 4 --d 9 --ss euler"},
                             {"resolution": "128,96", "sample_sampler": "ddim"})
    assert found == {"prompt": "a cat", "negative_prompt": "blurry", "sampler": "euler", "steps": 12, "cfg_scale": 4.0,
                     "width": 96, "height": 64, "seeds": (9,)}
    run_only = preview_defaults({"activation_tag": "mychar"}, {"resolution": "128,96", "sample_sampler": "k_euler_a"})
    assert (run_only["prompt"], run_only["width"], run_only["height"], run_only["sampler"], run_only["seeds"]) == \
        ("mychar", 128, 96, "euler_a", (-1,))
    assert preview_defaults({}, {}, "sdxl")["width"] == 1024
    assert preview_defaults({}, {"resolution": "x"})["width"] == 512
