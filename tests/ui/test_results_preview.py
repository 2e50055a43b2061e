"""Rendering a preview grid from the Results tab on a real completed run (tiny SD1 model, 64 px)."""

from __future__ import annotations

import html
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.ui import preview_actions, publish_actions
from lib_train_tools.ui import results_actions as actions
from lib_train_tools.ui.selection import selection_key
from lib_train_tools.ui.wiring import run_handler

from .completed_run import PROJECT, RUN, VERSION

SELECTION = selection_key(PROJECT, VERSION)
EPOCHS = [f"{RUN}-000001.safetensors", f"{RUN}.safetensors"]
SHOWN_AND_PICTURE = preview_actions.SHOWN + publish_actions.PICTURE


def form(weights: str = "0, 1", epochs=EPOCHS, seeds: str = "7", **changes) -> list:
    values = {"prompt": "mychar, red square", "negative": "", "sampler": "euler_a", "steps": 2, "cfg": 5.0,
              "seeds": seeds, "width": 64, "height": 64, "weights": weights, **changes}
    return [values[name] for name in preview_actions.FORM] + [list(epochs), f"{RUN}.safetensors"]


class Counting:
    """The host's renderer, counting the images it really renders."""

    def __init__(self, renderer):
        self.renderer = renderer
        self.rendered = []

    def render(self, request):
        self.rendered.append((Path(request.lora_path).name if request.lora_path else None, request.weight))
        return self.renderer.render(request)

    def release(self):
        self.renderer.release()

    def close(self):
        self.renderer.close()


def test_a_two_by_two_grid_with_cells_and_progress(results_services, completed, monkeypatch):
    counting = Counting(results_services.host.preview_renderer())
    monkeypatch.setattr(results_services.host, "preview_renderer", lambda: counting)
    reports = []
    reply = actions.render_grid(results_services, SELECTION, RUN, *form(),
                                progress=lambda done, total, name: reports.append((done, total)))
    shown = dict(zip(SHOWN_AND_PICTURE, reply.values, strict=True))
    assert reply.notice.kind == "ok"
    assert "rendered 4 image(s) (2 epoch(s) × 2 weight(s) × 1 seed(s))" in reply.notice.text
    assert reports[0] == (0, 4) and reports[-1] == (4, 4)
    # weight 0 is the base model: rendered once, reused for the second epoch
    assert sorted(counting.rendered, key=str) == sorted([(EPOCHS[0], 0.0), (EPOCHS[0], 1.0), (EPOCHS[1], 1.0)], key=str)

    grid = Image.open(shown["grid"])
    assert grid.width > 2 * 64 and grid.height > 2 * 64  # two cells each way plus the axis labels
    cells = [path for path, _caption in shown["cells"]]
    assert len(cells) == 4 and all(Path(p).is_file() for p in cells)
    assert [c for _p, c in shown["cells"]] == ["epoch 1 · weight 0 · seed 7", "epoch 1 · weight 1 · seed 7",
                                               "epoch 2 · weight 0 · seed 7", "epoch 2 · weight 1 · seed 7"]
    pixels = [np.asarray(Image.open(p)) for p in cells]
    assert np.array_equal(pixels[0], pixels[2])  # the same base picture in both rows
    assert not np.array_equal(pixels[1], pixels[0])  # the LoRA changes the picture

    folder = Path(shown["grid"]).parent
    assert folder.parent == completed.run_dir / "preview" and shown["folder"] == folder.name
    assert shown["earlier"].get("value") == folder.name and len(shown["earlier"].get("choices")) == 2
    # the publish picture now defaults to the new grid's weight-1 cell of the final file
    assert shown["image"].get("value") == f"preview/{folder.name}/{Path(cells[3]).name}"

    earlier_auto = next(c for c in shown["earlier"].get("choices") if c.endswith(preview_actions.AUTO_MARK))
    old = dict(zip(preview_actions.SHOWN, actions.show_earlier(results_services, SELECTION, RUN, earlier_auto).values,
                   strict=True))
    assert Path(old["grid"]).parent != folder and len(old["cells"]) == 2

    picked = actions.pick_cell(results_services, SELECTION, RUN, f"{RUN}.safetensors", folder.name, 0)
    assert picked.values[0].get("value") == f"preview/{folder.name}/{Path(cells[0]).name}"
    assert picked.values[1] == str(Path(cells[0]).resolve())


def test_rendering_while_training_says_so_and_frees_the_model(results_services, monkeypatch):
    renderer = results_services.host.preview_renderer()
    running = SimpleNamespace(jobs=lambda: [SimpleNamespace(status="running")])
    monkeypatch.setattr(results_services, "queue", running)
    reply = actions.render_grid(results_services, SELECTION, RUN, *form(weights="1", epochs=EPOCHS[:1]))
    assert reply.notice.kind == "info" and "a training job is running" in reply.notice.text
    assert renderer.cached_base is None


@pytest.mark.parametrize("changes, message", [
    ({"weights": "0, heavy"}, "'heavy' is not"),
    ({"seeds": "1.5"}, "whole numbers"),
    ({"prompt": "  "}, "the prompt is empty"),
    ({"width": 30}, "width must be a multiple of 8"),
    ({"epochs": []}, "choose at least one epoch"),
])
def test_bad_preview_settings_show_a_message_in_the_page(results_services, completed, changes, message):
    epochs = changes.pop("epochs", EPOCHS)
    before = sorted((completed.run_dir / "preview").iterdir())
    status, *_ = run_handler(lambda *a: actions.render_grid(results_services, SELECTION, RUN, *a),
                                tuple(form(epochs=epochs, **changes)), len(SHOWN_AND_PICTURE))
    assert "tt-error" in status and message in html.unescape(status)
    assert sorted((completed.run_dir / "preview").iterdir()) == before  # nothing half-written
