"""Handlers of the Dataset tab's "Loss masks" accordion (ui/mask_actions.py), without a browser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_train_tools.projects import StoreError
from lib_train_tools.ui import dataset_actions, mask_actions
from lib_train_tools.ui.gallery import gallery_items
from lib_train_tools.ui.replies import NO_CHANGE

from .conftest import picture

FORM = (64, 64, "keep_aspect", "center", 0, False, "keep", "png")  # the preprocessing form's fields


def _half_mask(path: Path, size: tuple[int, int] = (64, 64)) -> Path:
    """Left half black (ignored), right half white (trained)."""
    values = np.zeros((size[1], size[0]), dtype=np.uint8)
    values[:, size[0] // 2:] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values, "L").save(path)
    return path


def _index_of(services, name: str) -> int:
    items = gallery_items(services.store.version("テスト", "v1"))[0]
    return [i.path.name for i in items].index(name)


def test_import_then_preprocess_then_view(services, processed, tmp_path: Path) -> None:
    stray = _half_mask(tmp_path / "in" / "nobody.png")
    reply = mask_actions.import_mask_files(services, processed, [str(_half_mask(tmp_path / "in" / "pic00_mask.png")),
                                                                str(stray)], False)
    report, summary = reply.values
    assert reply.notice.kind == "warning"  # one mask matched no image
    assert reply.notice.text == ("1 mask(s) stored, 1 unmatched, 0 refused, 0 skipped; "
                                 "press Preprocess to carry them to the training images")
    assert "Stored (1)" in report and "pic00_mask.png → pic00.mask.png" in report and "Unmatched, no uploaded image of that name (1)" in report
    assert summary == "<p>1 of 6 images have a mask (0 from alpha); 0 of 6 training images carry one</p>"
    dataset_actions.run_preprocess(services, processed, *FORM)
    assert mask_actions.refresh_summary(services, processed).values == (
        "<p>1 of 6 images have a mask (0 from alpha); 1 of 6 training images carry one</p>",)

    view, note = mask_actions.show_mask(services, processed, _index_of(services, "pic00.png")).values
    assert note == "<p>pic00.png: mask from pic00.mask.png; 50% of the picture trains (weighted)</p>"
    shown = np.asarray(view, dtype=np.float64)
    original = np.asarray(picture(0), dtype=np.float64)
    assert view.size == (64, 64)
    assert np.array_equal(shown[:, 32:], original[:, 32:])  # white in the mask: as it is
    tinted = np.rint(original[:, :32] * 0.4 + np.array([255.0, 0.0, 0.0]) * 0.6)
    assert np.abs(shown[:, :32] - tinted).max() <= 1  # black in the mask: tinted red


def test_an_image_without_a_mask_is_shown_as_it_is(services, processed) -> None:
    view, note = mask_actions.show_mask(services, processed, _index_of(services, "pic03.png")).values
    assert note == "<p>pic03.png: no mask; it trains everywhere</p>"
    assert np.array_equal(np.asarray(view), np.asarray(picture(3)))


def test_before_preprocessing_the_view_reads_the_upload_and_its_alpha(services, selection, tmp_path: Path) -> None:
    rgba = np.asarray(picture(1).convert("RGBA")).copy()
    rgba[:, :16, 3] = 0
    (tmp_path / "in").mkdir()
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in" / "cut.png")
    dataset_actions.upload_files(services, selection, [str(tmp_path / "in" / "cut.png")], False)
    view, note = mask_actions.show_mask(services, selection, 0).values
    assert note == "<p>cut.png: mask from its alpha channel; 75% of the picture trains (weighted)</p>"
    assert tuple(np.asarray(view)[0, 0]) == (255, 102, 102)  # transparent (white background) tinted red
    assert mask_actions.mask_view(services, selection).values[2] == (
        "<p>1 of 1 images have a mask (1 from alpha)</p>")


def test_a_click_outside_the_gallery_changes_nothing(services, processed) -> None:
    assert mask_actions.show_mask(services, processed, 99).values == (NO_CHANGE, NO_CHANGE)
    assert mask_actions.show_mask(services, processed, None).values == (NO_CHANGE, NO_CHANGE)


def test_no_version_and_no_files(services, selection) -> None:
    view, note, summary = mask_actions.mask_view(services, "").values
    assert view is None and summary == ""
    empty = mask_actions.import_mask_files(services, selection, [], False)
    assert empty.notice.text == "no files were given" and empty.values == (NO_CHANGE, NO_CHANGE)
    with pytest.raises(StoreError, match="choose or create"):
        mask_actions.import_mask_files(services, "", ["x.png"], False)


def test_replacing_needs_the_checkbox(services, processed, tmp_path: Path) -> None:
    mask_actions.import_mask_files(services, processed, [str(_half_mask(tmp_path / "a" / "pic01.png"))], False)
    other = tmp_path / "b" / "pic01.png"
    other.parent.mkdir()
    Image.new("L", (64, 64), 255).save(other)
    refused = mask_actions.import_mask_files(services, processed, [str(other)], False)
    assert refused.notice.kind == "warning" and "Refused (1)" in refused.values[0]
    assert "tick &#x27;Replace existing masks&#x27;" in refused.values[0]
    replaced = mask_actions.import_mask_files(services, processed, [str(other)], True)
    assert replaced.notice.kind == "ok" and replaced.notice.text.startswith("1 mask(s) stored, 1 replaced")
    assert "The replaced masks are in" in replaced.values[0]


def test_the_overlay_reduces_big_images_and_tints_grey_in_proportion() -> None:
    image = Image.new("RGB", (2000, 1000), (0, 0, 255))
    mask = Image.new("L", (2000, 1000), 128)
    shown = mask_actions.overlay(image, mask)
    assert shown.size == (768, 384)
    weight = 128 / 255
    expected = np.array([0.0, 0.0, 255.0]) * weight + (np.array([0.0, 0.0, 255.0]) * 0.4 + [153.0, 0, 0]) * (1 - weight)
    assert np.abs(np.asarray(shown, dtype=np.float64)[10, 10] - expected).max() <= 1


def test_the_dataset_tab_has_the_loss_masks_accordion(services, selection) -> None:
    from lib_train_tools.ui.app import build_ui

    demo = build_ui(services)
    ids = {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert {"tt_masks", "tt_mask_upload", "tt_mask_replace", "tt_mask_view", "tt_mask_summary",
            "tt_mask_feedback", "tt_mask_report"} <= ids
    uploads = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "tt_mask_upload"]
    assert type(uploads[0]).__name__ == "UploadButton"  # not a gr.File (see javascript/train_tools.js)
