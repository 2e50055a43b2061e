"""What Begin train would queue: the number of runs and their names, live as grid values are typed."""

from __future__ import annotations

from lib_train_tools.ui import train_actions as actions
from lib_train_tools.ui.run_preview import planned_names, runs_html


def test_one_run_without_grid_values(services, selection):
    version = services.store.version("テスト", "v1")
    assert runs_html(version, {}) == '<p class="tt-runs" data-runs="1">1 run will be queued: テスト-v1</p>'
    (version.trains / "テスト-v1").mkdir(parents=True)
    assert planned_names(version, {}) == ["テスト-v1-2"]  # a run of that name exists: the queue numbers it


def test_every_combination_is_counted_and_named(services, selection):
    version = services.store.version("テスト", "v1")
    settings = {"grid_learning_rate": ["0.0001", "0.0005"], "grid_optimizer_type": ["AdamW", "Lion"],
                "grid_network_dim": ["8"]}
    html = runs_html(version, settings)
    assert 'data-runs="4"' in html and "4 runs will be queued (2 optimizer_type × 2 learning_rate)" in html
    assert planned_names(version, settings) == ["テスト-v1-op-AdamW-lr-0_0001", "テスト-v1-op-AdamW-lr-0_0005",
                                                "テスト-v1-op-Lion-lr-0_0001", "テスト-v1-op-Lion-lr-0_0005"]


def test_typed_values_are_counted_before_they_are_saved(services, selection):
    names = [f.name for f in actions.grid_fields()]
    typed = ["" for _ in names]
    typed[names.index("grid_max_train_epochs")] = "1, 2, 3"
    typed[names.index("grid_optimizer_type")] = ["AdamW", "Lion"]
    assert 'data-runs="6"' in actions.runs(services, selection, *typed).values[0]
    typed[names.index("grid_learning_rate")] = "0.001, fast"
    shown = actions.runs(services, selection, *typed).values[0]
    assert "Grid values cannot be used" in shown and "fast" in shown
    assert actions.runs(services, "", *typed).values == ("",)


def test_too_many_runs_are_refused(services, selection):
    version = services.store.version("テスト", "v1")
    settings = {"grid_learning_rate": [str(i / 1000) for i in range(1, 10)],
                "grid_network_dim": [str(i) for i in range(1, 10)]}
    assert "at most 64 can be queued" in runs_html(version, settings)
