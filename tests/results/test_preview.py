"""Tests for rendering a run's preview grid (epochs x weights) into its preview folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.results.grid_image import crisp_factor
from lib_train_tools.results.own_renderer import OwnSamplerRenderer
from lib_train_tools.results.preview import (
    CellRequest, PreviewCancelled, PreviewError, PreviewRequest, list_previews, render_preview,
)
from lib_train_tools.results.runs import read_run

from .conftest import OUTPUT_NAME, write_run


class FlatRenderer:
    """A fast stand-in: one flat colour per (LoRA file, weight, seed); records the requests."""

    def __init__(self):
        self.requests: list[CellRequest] = []

    def render(self, request: CellRequest) -> Image.Image:
        self.requests.append(request)
        shade = (hash((Path(request.lora_path).name, request.weight, request.seed)) % 200) + 20
        return Image.new("RGB", (request.width, request.height), (shade, 255 - shade, 90))


@pytest.fixture()
def run_dir(tmp_path, lora_factory, base_model) -> Path:
    return write_run(tmp_path / "trains" / "run1", lora_factory, base_model)


def _request(**changes) -> PreviewRequest:
    values = dict(prompt="a red cube", negative_prompt="blurry", sampler="euler_a", steps=3, cfg_scale=7.0,
                  seeds=[42], width=64, height=64, weights=[0.0, 1.0])
    values.update(changes)
    return PreviewRequest(**values)


def test_grid_of_two_epochs_by_two_weights_with_our_sampler(run_dir, base_model) -> None:
    epochs = [run_dir / f"{OUTPUT_NAME}-00000{e}.safetensors" for e in (1, 2)]
    calls = []
    renderer = OwnSamplerRenderer()
    result = render_preview(run_dir, _request(checkpoints=epochs), renderer,
                            progress=lambda done, total, label: calls.append((done, total, label)))
    assert result.folder.parent == run_dir / "preview" and result.grid_path == result.folder / "grid.png"
    assert [p.name for p in result.cell_paths] == ["r00_e000001_w0_s42.png", "r00_e000001_w1_s42.png",
                                                   "r01_e000002_w0_s42.png", "r01_e000002_w1_s42.png"]
    assert [c[:2] for c in calls] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert calls[-1][2] == "epoch 2, weight 1, seed 42"
    cells = [np.asarray(Image.open(p)) for p in result.cell_paths]
    # weight 0 is the base model in both rows; weight 1 differs from it and between the epochs
    assert np.array_equal(cells[0], cells[2]) and not np.array_equal(cells[1], cells[0])
    assert not np.array_equal(cells[1], cells[3])
    with Image.open(result.cell_paths[1]) as saved:
        assert saved.text["parameters"] == (f"a red cube <lora:{OUTPUT_NAME}-000001:1>\nNegative prompt: blurry\n"
                                            "Steps: 3, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 64x64")
    grid = Image.open(result.grid_path)
    width, height = grid.size
    side = 64 * crisp_factor(64, 2)                          # 64 px renders are enlarged crisply (x4)
    assert side == 256 and (width - 2 * side, height - 2 * side) > (20, 20)  # label bands left and on top
    top, left = height - 2 * side, width - 2 * side
    for index, cell in enumerate(cells):                     # cells sit at the bottom right, row by row
        row, col = divmod(index, 2)
        box = (left + col * side, top + row * side, left + (col + 1) * side, top + (row + 1) * side)
        enlarged = Image.fromarray(cell).resize((side, side), Image.Resampling.NEAREST)
        assert np.array_equal(np.asarray(grid.crop(box)), np.asarray(enlarged))
    manifest = json.loads((result.folder / "preview.json").read_text(encoding="utf-8"))
    assert manifest["seeds"] == [42] and manifest["weights"] == [0.0, 1.0] and len(manifest["cells"]) == 4
    assert manifest["base_model"] == str(base_model)         # taken from the run's config.toml
    assert read_run(run_dir).previews == [result.grid_path]


def test_preview_of_a_real_trainer_run(trained_run, base_model) -> None:
    """A trained LoRA changes the picture at weight 1; at weight 0 every row is the base model's.
    (The trainer alone writes no config.toml, so the base model is named here.)"""
    result = render_preview(trained_run, _request(steps=2, base_model=base_model), OwnSamplerRenderer())
    cells = [np.asarray(Image.open(p)) for p in result.cell_paths]
    assert [(c.epoch, c.weight) for c in result.cells] == [(1, 0.0), (1, 1.0), (2, 0.0), (2, 1.0)]
    assert np.array_equal(cells[0], cells[2])
    assert not np.array_equal(cells[1], cells[0]) and not np.array_equal(cells[3], cells[0])


def test_default_rows_are_every_epoch_then_the_final_file(run_dir) -> None:
    renderer = FlatRenderer()
    result = render_preview(run_dir, _request(weights=[0.5]), renderer)
    assert [r.lora_path.name for r in renderer.requests] == [f"{OUTPUT_NAME}-000001.safetensors",
                                                             f"{OUTPUT_NAME}-000002.safetensors",
                                                             f"{OUTPUT_NAME}.safetensors"]
    assert [c.epoch for c in result.cells] == [1, 2, 2]
    assert all(r.clip_skip == 1 and r.base_model.name == "tiny-sd1.safetensors" for r in renderer.requests)


def test_several_seeds_sit_side_by_side_and_random_seeds_are_drawn_once(run_dir) -> None:
    renderer = FlatRenderer()
    result = render_preview(run_dir, _request(seeds=[7, -1], checkpoints=[run_dir / f"{OUTPUT_NAME}.safetensors"]),
                            renderer)
    seeds = [r.seed for r in renderer.requests]
    assert seeds[0] == seeds[2] == 7 and seeds[1] == seeds[3] and seeds[1] >= 0
    assert [(c.col, c.weight) for c in result.cells] == [(0, 0.0), (1, 0.0), (2, 1.0), (3, 1.0)]
    grid = Image.open(result.grid_path)
    assert grid.width >= 4 * 64 and grid.height >= 64
    assert list_previews(run_dir)[0]["seeds"] == seeds[:2]


def test_cancel_leaves_nothing_and_two_previews_get_two_folders(run_dir) -> None:
    renderer = FlatRenderer()
    with pytest.raises(PreviewCancelled, match="after 2 of 6"):
        render_preview(run_dir, _request(), renderer, cancel=lambda: len(renderer.requests) >= 2)
    assert not (run_dir / "preview").exists() or list((run_dir / "preview").iterdir()) == []
    first = render_preview(run_dir, _request(), FlatRenderer())
    second = render_preview(run_dir, _request(), FlatRenderer())
    assert first.folder != second.folder and first.grid_path.is_file() and second.grid_path.is_file()
    assert [p.name for p in (run_dir / "preview").iterdir() if p.name.startswith(".")] == []


def test_renderer_failure_leaves_nothing(run_dir) -> None:
    class Broken(FlatRenderer):
        def render(self, request):
            if len(self.requests) == 1:
                raise RuntimeError("out of memory")
            return super().render(request)

    with pytest.raises(RuntimeError, match="out of memory"):
        render_preview(run_dir, _request(), Broken())
    assert list((run_dir / "preview").iterdir()) == []


def test_bad_requests_are_refused_with_every_problem(run_dir, tmp_path, lora_factory) -> None:
    with pytest.raises(PreviewError) as error:
        PreviewRequest(prompt=" ", sampler="plms", steps=0, width=60, height=64, seeds=[], weights=[float("nan")])
    message = str(error.value)
    for part in ("prompt is empty", "sampler 'plms'", "steps must be", "width must be", "no seed", "weights must"):
        assert part in message
    with pytest.raises(PreviewError, match="seeds must be whole numbers"):
        _request(seeds=[1, "2"])
    with pytest.raises(PreviewError, match="not found"):
        render_preview(run_dir, _request(checkpoints=[run_dir / "gone.safetensors"]), FlatRenderer())
    with pytest.raises(PreviewError, match="base model"):
        render_preview(run_dir, _request(base_model=tmp_path / "missing.safetensors"), FlatRenderer())
    sdxl = run_dir / f"{OUTPUT_NAME}-000003.safetensors"
    lora_factory(sdxl, seed=1, extra_metadata={"ss_base_model_version": "sdxl_base_v1-0",
                                               "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"})
    with pytest.raises(PreviewError, match=r"tiny-sd1.safetensors is SD1.*tiny-000003.safetensors \(SDXL\)"):
        render_preview(run_dir, _request(checkpoints=[sdxl]), FlatRenderer())
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(PreviewError, match="no LoRA files"):
        render_preview(empty, _request(), FlatRenderer())
