"""Previews through the WebUI's txt2img (host/webui_preview.py) against the fake ``modules``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .webui_fixtures import add_checkpoint, fake_webui  # noqa: F401


@pytest.fixture
def renderer(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui import WebUIHost

    return WebUIHost().preview_renderer()


def _cell(base: Path, lora: Path | None, weight: float = 1.0, **extra):
    # results.preview.CellRequest's fields (the renderer only reads attributes)
    fields = dict(base_model=base, lora_path=lora, weight=weight, prompt="a cat", negative_prompt="blurry",
                  sampler="euler_a", steps=4, cfg_scale=6.5, seed=42, width=64, height=96, clip_skip=None)
    fields.update(extra)
    return type("Cell", (), fields)()


def _lora(tmp_path: Path, name: str, data: bytes = b"lora") -> Path:
    path = tmp_path / "run" / f"{name}.safetensors"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_cell_uses_the_base_checkpoint_and_the_staged_lora_in_the_prompt(fake_webui, renderer, tmp_path):  # noqa: F811
    base = add_checkpoint(fake_webui, "sub/base.safetensors")
    lora = _lora(tmp_path, "cat-v1-000002")
    fake_webui.shared.opts.data["sd_model_checkpoint"] = "users-own.safetensors"
    image = renderer.render(_cell(base, lora, 0.5, clip_skip=2))
    run = fake_webui.processing.runs[-1]
    [(name, findable)] = run["loras_found"].items()
    assert findable and name.startswith("tt-preview-cat-v1-000002-")          # there while it was drawn
    assert run["prompt"] == f"a cat <lora:{name}:0.5>"
    assert list((fake_webui.models / "Lora" / "train_tools_previews").iterdir()) == []   # the link went after
    assert run["checkpoint"] == "sub/base.safetensors" and run["clip_skip"] == 2
    kwargs = run["kwargs"]
    assert kwargs["sampler_name"] == "Euler a" and kwargs["negative_prompt"] == "blurry"
    assert [kwargs[k] for k in ("steps", "cfg_scale", "seed", "width", "height")] == [4, 6.5, 42, 64, 96]
    assert kwargs["do_not_save_samples"] and kwargs["do_not_save_grid"] and kwargs["batch_size"] == 1
    assert image.size == (64, 96)
    # the user's checkpoint choice is the option again afterwards (the WebUI reloads it lazily)
    assert fake_webui.shared.opts.data["sd_model_checkpoint"] == "users-own.safetensors"
    assert fake_webui.shared.state.jobs == ["train_tools_preview"] and fake_webui.shared.state.active is None


def test_same_file_same_name_changed_file_new_name(fake_webui, renderer, tmp_path):  # noqa: F811
    base = add_checkpoint(fake_webui, "base.safetensors")
    lora = _lora(tmp_path, "cat")
    renderer.render(_cell(base, lora, 1.0))
    renderer.render(_cell(base, lora, 0.0))
    first, second = (r["prompt"] for r in fake_webui.processing.runs[-2:])
    assert first.replace(":1>", "") == second.replace(":0>", "")
    lora.write_bytes(b"retrained, longer")
    renderer.render(_cell(base, lora, 1.0))
    assert fake_webui.processing.runs[-1]["prompt"] != first


def test_no_lora_means_no_tag_and_weights_print_plainly(fake_webui, renderer):  # noqa: F811
    from lib_train_tools.host.webui_preview import lora_prompt

    base = add_checkpoint(fake_webui, "base.safetensors")
    renderer.render(_cell(base, None))
    assert fake_webui.processing.runs[-1]["prompt"] == "a cat"
    assert lora_prompt("p", "n", 1.0) == "p <lora:n:1>" and lora_prompt("p", "n", 0.75) == "p <lora:n:0.75>"


def test_a_base_model_the_webui_does_not_list_is_an_error_not_a_silent_swap(fake_webui, renderer, tmp_path):  # noqa: F811
    from lib_train_tools.host.webui_preview import WebUIPreviewError

    stray = tmp_path / "stray.safetensors"
    stray.write_bytes(b"x")
    with pytest.raises(WebUIPreviewError, match="not in the WebUI's checkpoint list"):
        renderer.render(_cell(stray, None))
    assert fake_webui.processing.runs == []


def test_webui_sampler_names(fake_webui):  # noqa: F811
    from lib_train_tools.host.webui_preview import webui_sampler_name

    assert [webui_sampler_name(n) for n in ("euler_a", "euler", "DDIM", "DPM++ 2M")] == \
        ["Euler a", "Euler", "DDIM", "DPM++ 2M"]


def test_copies_stay_for_the_next_cell_until_close(fake_webui, renderer, tmp_path, monkeypatch):  # noqa: F811
    def no_links(source, target):
        raise OSError("cross-device link")

    monkeypatch.setattr("lib_train_tools.host.lora_staging.os.link", no_links)
    base = add_checkpoint(fake_webui, "base.safetensors")
    renderer.render(_cell(base, _lora(tmp_path, "a")))
    renderer.render(_cell(base, _lora(tmp_path, "b", b"other")))
    folder = fake_webui.models / "Lora" / "train_tools_previews"
    assert len(list(folder.iterdir())) == 2
    assert all(all(r["loras_found"].values()) for r in fake_webui.processing.runs)
    renderer.close()
    assert list(folder.iterdir()) == []


def test_previews_during_training_put_the_model_back_and_release_hands_it_over(fake_webui, tmp_path):  # noqa: F811
    from lib_train_tools.host.webui import WebUIHost

    host = WebUIHost()
    fake_webui.shared.opts.data["train_tools_unload_model"] = True
    model = fake_webui.sd_models.FakeModel("base.safetensors")
    fake_webui.sd_models.model_data.sd_model = model
    base = add_checkpoint(fake_webui, "base.safetensors")
    host.before_training()                                    # the job starts: model to RAM
    renderer = host.preview_renderer()
    renderer.render(_cell(base, _lora(tmp_path, "a")))
    assert fake_webui.processing.runs[-1]["model_device"] == "cuda"   # A1111 cannot draw with it on the CPU
    renderer.release()                                        # the job still runs: hand VRAM back
    assert model.device == "cpu"
    host.after_training()
    assert model.device == "cuda" and model.moves == ["cpu", "cuda", "cpu", "cuda"]
