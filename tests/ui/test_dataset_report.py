"""The upload report lists small images as kept, with the enlargement they will get."""

from __future__ import annotations

from lib_train_tools.datasets.upload import Refusal, UploadResult
from lib_train_tools.ui.dataset_report import upload_report


def test_small_images_are_listed_as_kept_with_their_factor():
    result = UploadResult(added=("tiny.png", "wide.png", "big.png"), renamed=(), skipped=(), refused=(),
                          small=(Refusal("tiny.png", "8x8: will be upscaled 64x for training at 512x512, expect blur"),))
    report = upload_report(result)
    assert "Small (kept; training enlarges them) (1)" in report
    assert "tiny.png: 8x8: will be upscaled 64x for training at 512x512, expect blur" in report
    assert "Accepted (3)" in report and "Refused" not in report


def test_no_small_section_without_small_images():
    result = UploadResult(added=("big.png",), renamed=(), skipped=(), refused=())
    assert "Small" not in upload_report(result)
