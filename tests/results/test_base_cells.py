"""The weight-0 column is rendered once per distinct cell and handed out as copies."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from lib_train_tools.results.base_cells import ReuseBaseCells
from lib_train_tools.results.preview import CellRequest


class Recorder:
    def __init__(self):
        self.calls = []

    def render(self, request):
        self.calls.append((request.lora_path, request.weight, request.seed))
        return Image.new("RGB", (8, 8), (len(self.calls), 0, 0))


def cell(lora: str | None, weight: float, seed: int = 1) -> CellRequest:
    return CellRequest(base_model=Path("base.safetensors"), lora_path=Path(lora) if lora else None, weight=weight,
                       prompt="p", seed=seed)


def test_base_cells_render_once_per_seed_and_loras_always():
    recorder = Recorder()
    renderer = ReuseBaseCells(recorder)
    first = renderer.render(cell("e1.safetensors", 0.0))
    again = renderer.render(cell("e2.safetensors", 0.0))
    renderer.render(cell("e2.safetensors", 1.0))
    renderer.render(cell("e2.safetensors", 1.0))
    renderer.render(cell("e2.safetensors", 0.0, seed=2))
    assert recorder.calls == [(Path("e1.safetensors"), 0.0, 1), (Path("e2.safetensors"), 1.0, 1),
                              (Path("e2.safetensors"), 1.0, 1), (Path("e2.safetensors"), 0.0, 2)]
    assert renderer.reused == 1 and first is not again and list(first.getdata()) == list(again.getdata())
    again.putpixel((0, 0), (0, 0, 255))  # a caller changing its copy does not change the next one
    assert renderer.render(cell("e3.safetensors", 0.0)).getpixel((0, 0)) == (1, 0, 0)
