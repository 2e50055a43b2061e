"""Fit my card: the savers chosen for SD1.5 at 512 px and SDXL at 1024 px on 6-24 GiB cards."""

from __future__ import annotations

import pytest

from lib_train_tools.train.fit_card import DEFAULT_MARGIN_GIB, estimate_gib, fit_settings
from lib_train_tools.train.model_sizes import released_sizes

# No mixed precision, no checkpointing, AdamW, batch 2, text encoder trained (the registry's default).
HEAVY = {"mixed_precision": "no", "gradient_checkpointing": False, "optimizer_type": "AdamW",
         "train_batch_size": 2, "network_dim": 32, "cache_latents": False}
SD1 = {**HEAVY, "resolution": "512"}
SDXL = {**HEAVY, "resolution": "1024"}

SD1_SMALL = [{"mixed_precision": "bf16"}, {"gradient_checkpointing": True}]
SDXL_COMMON = [{"mixed_precision": "bf16"}, {"network_train_unet_only": True, "cache_text_encoder_outputs": True},
               {"gradient_checkpointing": True}]
FP8 = {"fp8_base": True, "fp8_base_unet": False}
SDXL_8GB = [*SDXL_COMMON, {"optimizer_type": "AdamW8bit"}, FP8]
SDXL_SMALL = [*SDXL_8GB, {"train_batch_size": 1}, *({"resolution": side} for side in ("960", "896", "832", "768"))]


def _fit(family: str, options: dict, card: float, **kwargs):
    return fit_settings(options, family, released_sizes(family), card, have_bitsandbytes=True, **kwargs)


@pytest.mark.parametrize("family, options, card, expected, fits", [
    ("sd1", SD1, 6, SD1_SMALL, True),
    ("sd1", SD1, 8, [{"mixed_precision": "bf16"}], True),
    ("sd1", SD1, 12, [], True),
    ("sd1", SD1, 24, [], True),
    ("sdxl", SDXL, 6, SDXL_SMALL, False),
    ("sdxl", SDXL, 8, SDXL_8GB, True),   # kohya's "SDXL LoRA in 8 GB with every saver on"
    ("sdxl", SDXL, 12, SDXL_COMMON, True),
    ("sdxl", SDXL, 24, SDXL_COMMON, True),
])
def test_choices_per_card(family, options, card, expected, fits):
    result = _fit(family, options, card)
    assert [step.changes for step in result.steps] == expected
    assert result.fits is fits
    assert result.budget_gib == card - DEFAULT_MARGIN_GIB
    final = estimate_gib({**options, **result.changes}, family, released_sizes(family))
    assert result.final_gib == pytest.approx(final, abs=0.01)
    if fits:
        assert final <= card - DEFAULT_MARGIN_GIB
        # stopping at the first fit: the estimate before the last step did not fit
        before = result.steps[-2].estimate_gib if len(result.steps) > 1 else result.start_gib
        assert not expected or before > card - DEFAULT_MARGIN_GIB
    else:
        assert final > card - DEFAULT_MARGIN_GIB
        assert "does NOT fit" in result.summary() and f"{result.final_gib:.1f} GiB" in result.summary()


def test_estimates_fall_at_every_step():
    result = _fit("sdxl", SDXL, 6)
    values = [result.start_gib, *(step.estimate_gib for step in result.steps)]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)
    assert result.start_gib == pytest.approx(42.54, abs=0.01)
    assert result.final_gib == pytest.approx(5.08, abs=0.01)
    assert all(step.why for step in result.steps)


def test_without_fp8_sdxl_does_not_fit_8_gib():
    """Where fp8 cannot be used (no CUDA, torch < 2.1) it is never chosen, and SDXL at 1024 px
    then does not fit an 8 GiB card with batch 1 even at 768 px."""
    result = _fit("sdxl", SDXL, 8, fp8=False)
    assert not result.fits and all("fp8_base" not in step.changes for step in result.steps)
    assert result.final_gib == pytest.approx(8.23, abs=0.01)
    fp8_step = next(step for step in _fit("sdxl", SDXL, 8).steps if "fp8_base" in step.changes)
    assert fp8_step.estimate_gib == pytest.approx(9.53 - 2_567_463_684 / 2**30 - 817_720_320 / 2**30, abs=0.01)


def test_sd1_on_24_gib_changes_nothing():
    result = _fit("sd1", SD1, 24)
    assert result.steps == () and result.changes == {} and result.fits
    assert result.final_gib == result.start_gib == pytest.approx(8.61, abs=0.01)
    assert "nothing changed" in result.summary()


def test_without_bitsandbytes_adafactor_and_its_args_cleared():
    options = {**SDXL, "optimizer_args": ("weight_decay=0.1",)}
    result = fit_settings(options, "sdxl", released_sizes("sdxl"), 10, have_bitsandbytes=False)
    assert result.steps[3].changes == {"optimizer_type": "Adafactor", "optimizer_args": ()}
    assert result.fits


def test_no_bf16_card_gets_fp16_and_random_crop_keeps_latents_uncached():
    result = _fit("sd1", {**SD1, "random_crop": True}, 6, bf16=False)
    assert [step.changes for step in result.steps] == [{"mixed_precision": "fp16"}, {"gradient_checkpointing": True}]


def test_shuffled_captions_are_not_cached():
    result = _fit("sdxl", {**SDXL, "shuffle_caption": True}, 24)
    assert result.steps[1].changes == {"network_train_unet_only": True}


def test_sd1_resolution_never_below_512_and_non_square_lowers_long_side():
    result = _fit("sd1", {**SD1, "resolution": "768,512", "train_batch_size": 1}, 2.5)
    sides = [step.changes["resolution"] for step in result.steps if "resolution" in step.changes]
    assert sides == ["704,512", "640,512", "576,512", "512"]
    assert not result.fits


def test_card_too_small_for_anything():
    result = _fit("sd1", SD1, 2)
    assert not result.fits
    assert result.final_gib == pytest.approx(1.91, abs=0.01)  # every saver, fp8, batch 1, 512 px
    # (SD1 keeps its text encoder)
    assert "does NOT fit" in result.summary()
    with pytest.raises(ValueError, match="must exceed the margin"):
        _fit("sd1", SD1, 1)
    with pytest.raises(ValueError, match="family"):
        fit_settings(SD1, "sd3", released_sizes("sd1"), 8)
