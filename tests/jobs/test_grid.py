"""Grid values checked against the registry, every combination expanded, runs named from what differs."""

from __future__ import annotations

import pytest

from lib_train_tools.jobs.grid import (
    GRID_KEYS,
    MAX_GRID_RUNS,
    GridError,
    expand_grid,
    format_grid_value,
    grid_suffix,
    parse_grid_values,
)


def test_comma_lists_become_typed_values_without_duplicates():
    assert parse_grid_values("learning_rate", "1e-4, 5e-4,0.0001") == [1e-4, 5e-4]
    assert parse_grid_values("network_dim", "8, 16") == [8, 16]
    assert parse_grid_values("network_alpha", ["4", 8]) == [4.0, 8.0]
    assert parse_grid_values("max_train_epochs", "10") == [10]


def test_optimizers_from_a_multi_select_take_the_registry_spelling():
    assert parse_grid_values("optimizer_type", ["adamw", "Lion", "AdamW"]) == ["AdamW", "Lion"]
    assert parse_grid_values("optimizer_type", "AdamW, Prodigy") == ["AdamW", "Prodigy"]


def test_empty_text_is_no_axis():
    assert parse_grid_values("unet_lr", "") == [] and parse_grid_values("unet_lr", " , ") == []


def test_every_invalid_value_is_reported():
    with pytest.raises(GridError) as error:
        parse_grid_values("learning_rate", "abc, -1, 1e-4")
    assert len(error.value.problems) == 2
    assert "'abc' is not a valid float" in str(error.value) and "below the minimum" in str(error.value)
    with pytest.raises(GridError, match="above the maximum"):
        parse_grid_values("train_batch_size", "2, 65")
    with pytest.raises(GridError, match="not one of"):
        parse_grid_values("optimizer_type", ["AdamW", "Adam9000"])
    with pytest.raises(GridError, match="not a valid int"):
        parse_grid_values("network_dim", "16.5")


def test_only_grid_options_take_several_values():
    with pytest.raises(GridError, match="cannot hold several values"):
        parse_grid_values("resolution", "512, 768")
    with pytest.raises(GridError, match="cannot hold several values"):
        expand_grid({}, {"seed": [1, 2]})


def test_expand_makes_every_combination_and_names_what_differs():
    base = {"learning_rate": 1e-4, "network_dim": 4, "resolution": "512"}
    runs = expand_grid(base, {"learning_rate": [1e-4, 5e-4], "optimizer_type": ["AdamW", "Lion"],
                              "network_dim": [16]})
    assert [r.suffix for r in runs] == ["-op-AdamW-lr-0_0001", "-op-AdamW-lr-0_0005", "-op-Lion-lr-0_0001",
                                        "-op-Lion-lr-0_0005"]
    assert all(r.config["network_dim"] == 16 and r.config["resolution"] == "512" for r in runs)
    assert runs[3].config["learning_rate"] == 5e-4 and runs[3].config["optimizer_type"] == "Lion"
    assert runs[1].differing == {"optimizer_type": "AdamW", "learning_rate": 5e-4}
    assert base == {"learning_rate": 1e-4, "network_dim": 4, "resolution": "512"}  # not changed


def test_no_axes_is_one_run_without_suffix():
    runs = expand_grid({"learning_rate": 1e-4}, {"learning_rate": [], "network_dim": [8]})
    assert len(runs) == 1 and runs[0].suffix == "" and runs[0].config == {"learning_rate": 1e-4, "network_dim": 8}


def test_name_of_the_issue_example():
    differing = {"network_alpha": 8.0, "learning_rate": 0.0005, "train_batch_size": 2, "network_dim": 16,
                 "optimizer_type": "AdamW", "max_train_epochs": 10}
    assert grid_suffix(differing) == "-bs-2-ep-10-op-AdamW-lr-0_0005-net-16-ap-8"
    assert grid_suffix({"unet_lr": 1e-4, "text_encoder_lr": 5e-5}) == "-ulr-0_0001-tlr-0_00005"
    assert set(GRID_KEYS) == {"learning_rate", "unet_lr", "text_encoder_lr", "optimizer_type", "network_dim",
                              "network_alpha", "max_train_epochs", "train_batch_size"}


@pytest.mark.parametrize("value,text", [(1e-5, "0_00001"), (0.0005, "0_0005"), (8.0, "8"), (0.5, "0_5"),
                                        (2.5e-3, "0_0025"), (16, "16"), ("AdamW8bit", "AdamW8bit")])
def test_values_in_names(value, text):
    assert format_grid_value(value) == text


def test_too_many_runs_are_refused():
    many = [1e-5 * (i + 1) for i in range(MAX_GRID_RUNS + 1)]
    with pytest.raises(GridError, match=f"at most {MAX_GRID_RUNS}"):
        expand_grid({}, {"learning_rate": many})
