"""Step counts for the live display, the original tab's repeats rule, the target-steps rule."""

import pytest

from lib_train_tools.datasets.preprocess import preprocess
from lib_train_tools.datasets.repeats import original_tab_repeats, repeats_for_target, set_repeats, step_count


@pytest.mark.parametrize(
    "images, repeats, epochs, batch, total",
    [(10, 10, 10, 2, 500), (20, 5, 10, 4, 250), (100, 1, 10, 4, 250), (1000, 1, 6, 8, 750), (7, 3, 2, 2, 22)],
)
def test_guide_examples(images, repeats, epochs, batch, total):
    counted = step_count(images, repeats, epochs, batch)
    assert counted.total_steps == total
    assert counted.steps_per_epoch == -(-images * repeats // batch)
    assert counted.in_guide_range == (250 <= total <= 1000)


def test_original_rule_and_target_rule():
    assert original_tab_repeats(20) == 25
    assert original_tab_repeats(200) == 4
    assert repeats_for_target(10, 10, 2, 500) == 10
    assert repeats_for_target(20, 10, 4, 250) == 5
    assert repeats_for_target(1000, 6, 8, 250) == 1


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="batch size"):
        step_count(10, 1, 1, 0)
    with pytest.raises(ValueError, match="at least 1"):
        original_tab_repeats(0)


def test_set_repeats_renames_the_processed_folder(loaded):
    with pytest.raises(FileNotFoundError, match="preprocess it first"):
        set_repeats(loaded, 3)
    preprocess(loaded)
    assert set_repeats(loaded, 3) == "3_proj"
    assert loaded.processed_repeats() == 3 and len(list(loaded.processed_dir().glob("*.png"))) == 20
